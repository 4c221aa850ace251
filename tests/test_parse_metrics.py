"""The project's EVALB (pipelines.parse_metrics) against the real one, built from ../shared/tools/evalb."""

import numpy as np
import pytest

from pipelines.parse_metrics import COLLINS, EvalbParameters, evalb, label_scores, read_bracketed, score_sentence
from tests.evalb import EVALB, require_evalb, run_evalb

NAMES = {
    "recall": "Bracketing Recall", "precision": "Bracketing Precision", "f1": "Bracketing FMeasure",
    "complete_match": "Complete match", "tagging_accuracy": "Tagging accuracy",
    "sentences": "Number of sentence", "errors": "Number of Error sentence", "skipped": "Number of Skip  sentence",
}  # fmt: skip


def assert_agrees(ours, theirs):
    for section, reference in (("all", "All"), ("len<=40", "len<=40")):
        for name, label in NAMES.items():
            assert ours[section][name] == pytest.approx(theirs[reference][label], abs=0.01), (section, name)


def test_evalbs_own_sample_scores_as_evalb_scores_it():
    require_evalb()
    sample = EVALB / "sample"
    parameters = EvalbParameters.read(sample / "sample.prm")
    ours = evalb((sample / "sample.gld").read_text().splitlines(), (sample / "sample.tst").read_text().splitlines(),
                 parameters)  # fmt: skip
    assert_agrees(ours, run_evalb(sample / "sample.gld", sample / "sample.tst", sample / "sample.prm"))
    assert ours["all"]["recall"] == pytest.approx(87.76, abs=0.005)  # sample.rsl's own figure


@pytest.mark.data
@pytest.mark.parametrize("kind", ["right_branching", "damaged_gold"])
def test_treebank_test_files_score_as_evalb_scores_them_with_collins_prm(tmp_path, kind):
    """The test split (wsj_0180-wsj_0189, real tags in both files, as the app writes them) against
    the right-branching baseline and against gold trees with a third of their brackets flattened."""
    from nltk import Tree

    from pipelines.trees import load_treebank, one_line, right_branching
    from tests.support import SHARED_DATA

    require_evalb()
    gold = load_treebank(SHARED_DATA)["test"]
    rng = np.random.default_rng(0)

    def damaged(tree):
        if isinstance(tree, str) or len(tree) == 1 and isinstance(tree[0], str):
            return [tree]
        children = [c for child in tree for c in damaged(child)]
        return children if rng.random() < 0.33 else [Tree(tree.label(), children)]

    def predicted(tree):
        if kind == "right_branching":
            return right_branching(tree.pos())
        flattened = damaged(tree)
        return flattened[0] if len(flattened) == 1 else Tree(tree.label(), flattened)

    gold_lines = [one_line(Tree("TOP", [tree])) for tree in gold]
    test_lines = [one_line(Tree("TOP", [predicted(tree)])) for tree in gold]
    (tmp_path / "gold.txt").write_text("\n".join(gold_lines) + "\n")
    (tmp_path / "test.txt").write_text("\n".join(test_lines) + "\n")
    ours = evalb(gold_lines, test_lines, COLLINS)
    assert_agrees(ours, run_evalb(tmp_path / "gold.txt", tmp_path / "test.txt"))
    assert ours["all"]["errors"] == 0 and 0 < ours["all"]["f1"] < 100


def test_deleted_punctuation_takes_its_word_and_advp_equals_prt():
    terminals, brackets, length = read_bracketed("(TOP (S (NP (NN it)) (VP (VBD ran) (ADVP (RB off))) (. .)))")
    assert terminals == [("NN", "it"), ("VBD", "ran"), ("RB", "off")] and length == 4
    score = score_sentence(
        "(TOP (S (NP (NN it)) (VP (VBD ran) (ADVP (RB off))) (. .)))",
        "(TOP (S (NP (NN it)) (VP (VBD ran) (PRT (RB off))) (. .)))",
    )
    assert (score.status, score.match, score.gold, score.test) == (0, 4, 4, 4)  # S, NP, VP, ADVP=PRT


def test_a_test_line_with_other_words_is_an_error_and_an_empty_one_a_skip():
    assert score_sentence("(S (NN a) (NN b))", "(S (NN a) (NN c))").status == 1
    assert score_sentence("(S (NN a) (NN b))", "(S (NN a))").status == 1
    assert score_sentence("(S (NN a) (NN b))", "").status == 2


def test_per_label_scores_count_each_labels_brackets_and_add_up_to_evalbs_totals():
    gold = ["(TOP (S (NP (DT the) (NN dog)) (VP (VBD ran) (PP (IN to) (NP (PRP us))))))"]
    test = ["(TOP (S (NP (DT the) (NN dog)) (VP (VBD ran) (PP (IN to)) (NP (PRP us)))))"]
    scores = label_scores(gold, test)
    # Gold: S, NP, VP, PP(to us), NP(us); test: S, NP, VP, PP(to), NP(us): PP alone is off.
    assert {label: (row["gold"], row["test"], row["match"]) for label, row in scores.items()} == {
        "NP": (2, 2, 2), "S": (1, 1, 1), "VP": (1, 1, 1), "PP": (1, 1, 0),
    }  # fmt: skip
    assert scores["PP"]["f1"] == 0 and scores["NP"]["f1"] == 100
    totals = evalb(gold, test)["all"]
    matched = sum(row["match"] for row in scores.values())
    assert 100 * matched / sum(row["gold"] for row in scores.values()) == pytest.approx(totals["recall"])
