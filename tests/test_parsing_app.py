"""The parsing app end to end on a few treebank files, its constraint, and its generation."""

import json

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from apps import runner, saved
from apps.characters import MAX_WORD_CHARS
from apps.parsing import APP
from apps.parsing_data import ParseData, Parser, normal_word
from apps.seq2seq import Seq2SeqGenerator, pad
from pipelines.text import character_id_rows
from pipelines.trees import TreeConstraint, is_well_formed, linearize, load_treebank, max_symbols
from pipelines.vocab import Vocabulary
from tests.evalb import require_evalb, run_evalb
from tests.support import SHARED_DATA, cli, new_store, run_main, single_run

FILES = ["--train-files", "wsj_0001-wsj_0012", "--valid-files", "wsj_0170", "--test-files", "wsj_0180-wsj_0181"]
SMALL = ["--units", "24", "--decoder-units", "48", "--embedding-dim", "24", "--target-embedding-dim", "16",
         "--learning-rate", "0.005", "--batch-size", "16", "--char-features", "8"]  # fmt: skip
SENTENCE = "The luxury auto maker last year sold 1,214 cars in the U.S."


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("parsing")
    tracking_uri = new_store(root, "test-parsing")
    code = runner.main(APP, [
        "train", "--data-dir", str(SHARED_DATA), "--epochs", "2", *FILES, *SMALL, "--tracking-uri", tracking_uri,
        "--experiment", "test-parsing", "--checkpoint-dir", str(root / "checkpoints"), "--verbose", "0",
    ])  # fmt: skip
    assert code == 0
    run = single_run(tracking_uri, "test-parsing")
    return {"root": root, "tracking_uri": tracking_uri, "run": run, "uri": f"runs:/{run.info.run_id}/model"}


@pytest.fixture(scope="module")
def treebank():
    return load_treebank(SHARED_DATA)


def symbol_table(trees):
    data = ParseData.build({"train": trees}, 8, 0)
    return data.symbols.specials + data.symbols.tokens, data.symbols


def test_every_real_tree_is_allowed_by_the_constraint(treebank):
    table, symbols = symbol_table(treebank["train"])
    constraint = TreeConstraint(table, symbols.end_id)
    for tree in treebank["valid"] + treebank["test"]:
        ids = symbols.encode(linearize(tree)) + [symbols.end_id]
        budget = max_symbols(len(tree.leaves()))
        assert len(ids) <= budget
        for position, symbol in enumerate(ids):
            if symbols.oov_id in ids:  # a label never seen in training
                break
            assert constraint.allowed(ids[:position], len(tree.leaves()), budget)[symbol], (tree, position)


@pytest.mark.parametrize("seed", range(20))
def test_random_choices_under_the_constraint_always_end_as_a_tree_over_the_words(treebank, seed):
    table, symbols = symbol_table(treebank["train"])
    constraint = TreeConstraint(table, symbols.end_id)
    rng = np.random.default_rng(seed)
    for _ in range(10):
        words = int(rng.integers(1, 30))
        budget = max_symbols(words) if seed % 2 else words + 3  # the tightest budget that fits a tree
        prefix = []
        while not prefix or prefix[-1] != symbols.end_id:
            allowed = np.flatnonzero(constraint.allowed(prefix, words, budget))
            assert len(allowed), prefix
            prefix.append(int(rng.choice(allowed)))
        assert len(prefix) <= budget
        assert is_well_formed(symbols.decode(prefix[:-1]), words)


def test_training_logs_parse_scores_beside_the_right_branching_baseline(trained):
    run = trained["run"]
    client = MlflowClient(trained["tracking_uri"])
    metrics = run.data.metrics
    losses = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "loss"), key=lambda m: m.step)]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_f1")] == [0, 1]
    assert metrics["test_malformed"] == 0  # constrained decoding
    assert 0 <= metrics["test_f1"] <= 1 and 0 < metrics["test_right_branching_f1"] < 1
    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert {"reports/attention_test.png", "reports/trees_test.txt", "reports/label_f1_test.txt"} <= reports


def test_evaluate_writes_files_that_the_real_evalb_scores_as_the_app_does(trained, tmp_path):
    require_evalb()
    run = trained["run"]
    args = runner.build_parser(APP).parse_args([
        "evaluate", "--model", trained["uri"], "--data-dir", str(SHARED_DATA), "--test-files", "wsj_0180-wsj_0181",
        "--evalb-files", str(tmp_path), "--tracking-uri", trained["tracking_uri"],
    ])  # fmt: skip
    metrics = saved.evaluate(APP, args)
    for name in ("f1", "recall", "precision", "complete_match", "malformed"):
        assert metrics[name] == pytest.approx(run.data.metrics[f"test_{name}"], abs=1e-9), name
    # Brackets to compare: EVALB prints no F-measure when nothing matches.
    assert metrics["recall"] > 0 and metrics["precision"] > 0
    reference = run_evalb(tmp_path / "gold.mrg", tmp_path / "test.mrg")
    everything = reference["All"]
    assert everything["Number of Error sentence"] == 0
    assert 100 * metrics["f1"] == pytest.approx(everything["Bracketing FMeasure"], abs=0.01)
    assert 100 * metrics["recall"] == pytest.approx(everything["Bracketing Recall"], abs=0.01)
    assert 100 * metrics["f1_len40"] == pytest.approx(reference["len<=40"]["Bracketing FMeasure"], abs=0.01)


def test_generation_agrees_with_the_training_model_and_survives_save_and_load(trained, treebank):
    """Unconstrained greedy generation, fed back as the training model's input, is the argmax of
    its logits at every step; the reloaded `.keras` file generates the same."""
    model = saved.load_model(trained["uri"], tracking_uri=trained["tracking_uri"])
    settings = model.get_layer("settings").values
    words, symbols = Vocabulary.from_dict(settings["words"]), Vocabulary.from_dict(settings["symbols"])
    sentences = [t.leaves() for t in treebank["test"][:6]]
    generator = Seq2SeqGenerator(model)
    for sentence in sentences:
        source = words.encode([normal_word(w) for w in sentence])
        chars = character_id_rows([sentence], MAX_WORD_CHARS)
        found = generator.generate([source], symbols.start_id, symbols.end_id, 60, chars=chars)[0]
        previous = pad([[symbols.start_id, *found.tokens[:-1]]])
        logits = model.predict_on_batch({"words": pad([source]), "previous": previous, "chars": chars[0][None]})
        assert list(np.argmax(logits[0], axis=-1)) == list(found.tokens)
    sequences = Parser(model, words, symbols).symbol_sequences(sentences, constrained=False)
    reloaded = saved.load_model(str(next((trained["root"] / "checkpoints").rglob("model.keras"))))
    assert Parser(reloaded, words, symbols).symbol_sequences(sentences, constrained=False) == sequences


def test_predict_prints_a_tree_and_one_bracketed_line_with_unseen_words(trained, capsys):
    result = cli("parsing", "predict", "--model", trained["uri"], "--tracking-uri", trained["tracking_uri"],
                 SENTENCE, "Zyzzyvas quibbled over flibbertigibbets .")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert SENTENCE in result.stdout and "luxury" in result.stdout and "flibbertigibbets" in result.stdout
    result = run_main(APP, "predict", "--model", trained["uri"], "--tracking-uri", trained["tracking_uri"],
                      "--bracketed", "--beam-width", "3", SENTENCE, capsys=capsys)  # fmt: skip
    assert result.returncode == 0, result.stderr
    from nltk import Tree

    tree = Tree.fromstring(result.stdout.strip())
    assert tree.leaves() == ["The", "luxury", "auto", "maker", "last", "year", "sold", "1,214", "cars", "in", "the",
                             "U.S", "."]  # fmt: skip


def test_predict_json_and_an_input_without_words(trained, capsys):
    result = run_main(APP, "predict", "--model", trained["uri"], "--tracking-uri", trained["tracking_uri"],
                      "--json", "Stocks fell .", capsys=capsys)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["text"] == "Stocks fell ."
    result = run_main(APP, "predict", "--model", trained["uri"], "--tracking-uri", trained["tracking_uri"],
                      "   ", capsys=capsys)  # fmt: skip
    assert result.returncode == 2 and "error:" in result.stderr and "Traceback" not in result.stderr


def test_logged_model_carries_its_symbols_and_serves_trees_as_predict_prints(trained, tmp_path, capsys):
    from nltk import Tree

    from tests.servers import check_served_as_predicted

    model = mlflow.pyfunc.load_model(trained["uri"])
    assert "XX" in model.metadata.metadata["symbols"]
    records = check_served_as_predicted(APP, trained["uri"], trained["tracking_uri"], [SENTENCE, "Stocks fell ."],
                                        tmp_path / "serve.log", capsys, params={"beam_width": 3},
                                        flags=["--beam-width", "3"])  # fmt: skip
    assert Tree.fromstring(records[1]["tree"]).leaves() == ["Stocks", "fell", "."]


def test_a_file_range_without_trees_is_a_clear_error(tmp_path, capsys):
    result = run_main(APP, "train", "--data-dir", SHARED_DATA, "--test-files", "wsj_0900-wsj_0999",
                      "--tracking-uri", new_store(tmp_path, "x"), capsys=capsys)  # fmt: skip
    assert result.returncode == 2
    assert "wsj_0900-wsj_0999" in result.stderr and "no treebank file" in result.stderr
