"""Trees for parsing: cleaning as parsing papers do, Vinyals et al.'s linearization and its inverse."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk import Tree

from pipelines.trees import MalformedTree, base_label, clean, delinearize, is_well_formed, linearize


def test_the_papers_example_is_written_with_labelled_closing_brackets():
    tree = Tree.fromstring("(S (NP (NNP John)) (VP (VBZ has) (NP (DT a) (NN dog))) (. .))")
    symbols = linearize(tree)
    assert " ".join(symbols) == "(S (NP XX )NP (VP XX (NP XX XX )NP )VP XX )S"
    assert len(symbols) == 5 + 2 * 4  # n words, k constituents: n + 2k symbols
    assert delinearize(symbols, tree.leaves(), [tag for _, tag in tree.pos()]) == tree


def test_cleaning_drops_empty_elements_their_empty_parents_and_function_tags():
    tree = Tree.fromstring(
        "(S (NP-SBJ-1 (-NONE- *)) (VP (VBD said) (SBAR (-NONE- 0) (S (NP-SBJ (PRP it)) "
        "(VP (VBD rose) (PP-TMP=2 (-LRB- -LRB-) (NN today) (-RRB- -RRB-)))))) (. .))"
    )
    expected = Tree.fromstring(
        "(S (VP (VBD said) (SBAR (S (NP (PRP it)) (VP (VBD rose) (PP (-LRB- -LRB-) (NN today) (-RRB- -RRB-)))))) (. .))"
    )
    assert clean(tree) == expected
    assert clean(Tree.fromstring("(NP (-NONE- *T*-1))")) is None
    assert [base_label(x) for x in ("NP-SBJ-1", "PP=2", "-LRB-", "-NONE-", "ADVP-TMP")] == [
        "NP", "PP", "-LRB-", "-NONE-", "ADVP",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "symbols, words, message",
    [
        ("(S XX )NP", 1, "closes S"),
        ("(S XX", 1, "left open"),
        ("(S XX )S XX", 2, "after the root closed"),
        ("(S XX XX )S", 1, "more XX"),
        ("(S XX )S", 2, "1 XX for 2 words"),
        ("XX", 1, "outside any constituent"),
        ("(S (NP )NP XX )S", 1, "empty constituent NP"),
        ("(S foo )S", 1, "unknown symbol"),
        ("", 0, "no tree"),
    ],
)
def test_a_malformed_sequence_says_what_is_wrong(symbols, words, message):
    with pytest.raises(MalformedTree, match=message):
        delinearize(symbols.split(), ["w"] * words)
    assert not is_well_formed(symbols.split(), words)


symbols = st.lists(st.sampled_from(["(S", ")S", "(NP", ")NP", "XX"]), max_size=14)


@settings(max_examples=300, deadline=None)
@given(symbols=symbols, words=st.integers(0, 5))
def test_any_sequence_is_a_tree_that_writes_back_to_it_or_is_refused(symbols, words):
    try:
        tree = delinearize(symbols, [f"w{i}" for i in range(words)])
    except MalformedTree:
        return
    assert linearize(tree) == symbols and tree.leaves() == [f"w{i}" for i in range(words)]


@pytest.mark.data
def test_the_treebank_sample_cleaned_and_linearized_as_the_notes_count_it():
    """../shared/notes/seq2seq.md, counted independently: 3,796 trees, about 24 words (at most
    249) and 61 symbols (at most 573) a sentence, 55 distinct symbols; every tree comes back."""
    import nltk

    from tests.support import SHARED_DATA

    nltk.data.path.insert(0, str(SHARED_DATA / "nltk_data"))
    from nltk.corpus import treebank

    trees = [clean(tree) for tree in treebank.parsed_sents()]
    assert len(trees) == 3796 and all(tree is not None for tree in trees)
    words = [len(tree.leaves()) for tree in trees]
    sequences = [linearize(tree) for tree in trees]
    assert int(np.mean(words)) == 24 and max(words) == 249
    assert int(np.mean([len(s) for s in sequences])) == 61 and max(len(s) for s in sequences) == 573
    assert len({symbol for s in sequences for symbol in s}) == 55
    for tree, sequence in zip(trees, sequences):
        assert delinearize(sequence, tree.leaves(), [tag for _, tag in tree.pos()]) == tree


def test_the_reference_evalb_builds_and_scores_its_own_sample():
    """The harness the parsing scorer is checked with: EVALB's sample as its sample.rsl reports it."""
    from tests.evalb import EVALB, require_evalb, run_evalb

    require_evalb()
    sample = EVALB / "sample"
    summary = run_evalb(sample / "sample.gld", sample / "sample.tst", sample / "sample.prm")
    assert summary["All"]["Number of sentence"] == 24 and summary["All"]["Number of Error sentence"] == 5
    assert summary["All"]["Bracketing Recall"] == 87.76 and summary["All"]["Bracketing Precision"] == 90.53
    assert summary["All"]["Complete match"] == 52.94
    assert summary["len<=40"]["Bracketing Recall"] == 81.25


def _reader(tmp_path, monkeypatch, text):
    """NLTK's own bracket reader over one .mrg file (NLTK reads only below its data path, which
    gets the test's folder for the test's duration: left there, it would hide the real treebank
    from a later test in the same process)."""
    import nltk
    from nltk.corpus.reader import BracketParseCorpusReader

    folder = tmp_path / "nltk_data" / "corpora" / "treebank" / "combined"
    folder.mkdir(parents=True)
    (folder / "wsj_0001.mrg").write_text(text)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data"), *nltk.data.path])
    return BracketParseCorpusReader(str(folder), r"wsj_.*\.mrg")


GOOD = "( (S (NP-SBJ (DT The) (NN dog)) (VP (VBD ran)) (. .)) )\n"


@pytest.mark.parametrize(
    "text, message",
    [
        (GOOD + "( (S (NP (DT A) (NN cat)) (VP (VBD sat)) (. .) )\n", "tree 2, line 2: 1 bracket(s) never closed"),
        (GOOD + GOOD + "( (S (NP (DT A) (NN cat)))) (VP (VBD sat)) )\n", "tree 3, line 3: a ')' closes nothing"),
    ],
)
def test_an_unbalanced_mrg_file_names_the_file_the_tree_and_its_line(tmp_path, monkeypatch, text, message):
    from pipelines.sources import DataFormatError
    from pipelines.trees import read_treebank_file

    reader = _reader(tmp_path, monkeypatch, text)
    with pytest.raises(DataFormatError, match=re.escape(f"wsj_0001.mrg: {message}")):
        read_treebank_file(reader, "wsj_0001.mrg")


def test_a_good_mrg_file_reads_cleaned(tmp_path, monkeypatch):
    from pipelines.trees import read_treebank_file

    (tree,) = read_treebank_file(_reader(tmp_path, monkeypatch, GOOD), "wsj_0001.mrg")
    assert " ".join(linearize(tree)) == "(S (NP XX XX )NP (VP XX )VP XX )S"


def test_file_ranges_pick_files_and_say_when_they_pick_none():
    from pipelines.sources import DataNotFoundError
    from pipelines.trees import file_range

    available = [f"wsj_{i:04d}.mrg" for i in range(1, 190)]
    assert file_range("wsj_0180-wsj_0189", available) == [f"wsj_{i:04d}.mrg" for i in range(180, 190)]
    assert file_range("wsj_0005, wsj_0001-wsj_0002", available) == ["wsj_0005.mrg", "wsj_0001.mrg", "wsj_0002.mrg"]
    with pytest.raises(DataNotFoundError, match="'wsj_0190-wsj_0199': no treebank file.*wsj_0001-wsj_0189"):
        file_range("wsj_0190-wsj_0199", available)


@pytest.mark.data
def test_the_default_split_is_by_file_and_tests_on_wsj_0180_to_0189():
    """The issue's prototype tested on wsj_0180-wsj_0189: 127 sentences."""
    from pipelines.trees import load_treebank
    from tests.support import SHARED_DATA

    splits = load_treebank(SHARED_DATA)
    assert {k: len(v) for k, v in splits.items()} == {"train": 3501, "valid": 168, "test": 127}
