"""The translation app: its units, its corpora's checks, generation without OOV, and a real run
that learns a word-for-word translation and predicts it from raw text with the saved model."""

import gzip
import json
import random

import keras
import numpy as np
import pytest

from apps import runner, seq2seq
from apps.callbacks import TimeLimit
from apps.translation import APP
from apps.translation_data import Translator, moses_lowercased, tokenized_bleu, translation_metrics
from pipelines.parallel import load_parallel
from pipelines.sources import DataFormatError
from pipelines.subwords import SubwordTokenizer, detokenize, learn_wordpieces, units_of
from pipelines.vocab import Vocabulary
from tests.support import SHARED_DATA, cli, new_store, run_main, single_run

MULTI30K = SHARED_DATA / "multi30k"
# A toy language pair: each English word has one "German" word, word order kept, so that a
# trained model's translations can be checked word for word.
LEXICON = {"the": "der", "dog": "Hund", "cat": "Katze", "runs": "läuft", "sleeps": "schläft", "big": "große",
           "small": "kleine", "red": "rote", "green": "grüne", "bird": "Vogel", "sings": "singt", "now": "jetzt"}  # fmt: skip


def raw_lines(name):
    with gzip.open(MULTI30K / name, "rt", encoding="utf-8") as lines:
        return [line.rstrip("\n") for line in lines]


@pytest.mark.parametrize("language", ["en", "de", "fr"])
def test_word_units_spell_every_test_caption_back(language):
    texts = raw_lines(f"test_2016_flickr.{language}.gz")
    units = units_of(texts, "words")
    assert [detokenize(u) for u in units] == [" ".join(t.split()) for t in texts]
    assert units_of(["Ein Mann's Hut."], "words") == [["Ein", "Mann", "##'", "##s", "Hut", "##."]]


@pytest.fixture(scope="module")
def german_pieces():
    train = raw_lines("train.de.gz")[:1000]
    return train, learn_wordpieces(train, 1000, cache=False)


def test_wordpieces_learnt_on_training_text_spell_unseen_text_back_and_never_crash(german_pieces):
    train, pieces = german_pieces
    assert 600 < len(pieces) < 1300 and "##." in pieces  # "about" 1000: the learner adds every character
    test = raw_lines("test_2016_flickr.de.gz")
    units = units_of(test, "wordpiece", pieces)
    seen = set("".join(train))
    spelt = [(u, t) for u, t in zip(units, test) if set(t) <= seen]  # a character never seen makes its word OOV
    assert len(spelt) > 900
    assert [detokenize(u) for u, _ in spelt] == [" ".join(t.split()) for _, t in spelt]
    assert np.mean([len(u) for u in units]) < 2.5 * np.mean(
        [len(t.split()) for t in test]
    )  # pieces, not characters (about 6)
    assert units_of(["Ein ☃Mann ist hier."], "wordpiece", pieces)[0][1] == "[UNK]"
    # The learner saw words split at punctuation: no piece joins a letter and a full stop or
    # comma, and a frequent word keeps its own piece with the punctuation after it.
    assert not [p for p in pieces if len(p.removeprefix("##")) > 1 and ("." in p or "," in p)]
    assert units_of(["Ein Mann, zwei Hunde."], "wordpiece", pieces) == [["Ein", "Mann", "##,", "zwei", "Hunde", "##."]]


def test_the_tokenizer_layer_gives_the_units_and_survives_its_config(german_pieces):
    _, pieces = german_pieces
    texts = ["Ein Mann fährt mit dem Fahrrad einen Hügel hinunter.", "Zwei Hunde, einer braun."]
    layer = SubwordTokenizer("wordpiece", pieces, max_length=6)
    again = SubwordTokenizer.from_config(layer.get_config())
    expected = [(u + [""] * 6)[:6] for u in units_of(texts, "wordpiece", pieces)]
    for tokenizer in (layer, again):
        got = [[t.decode() for t in row] for row in np.asarray(tokenizer(np.asarray(texts, dtype=object)))]
        assert got == expected


def write_pair(folder, split, sources, targets, source="en", target="de"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.{source}").write_text("\n".join(sources) + "\n", encoding="utf-8")
    (folder / f"{split}.{target}").write_text("\n".join(targets) + "\n", encoding="utf-8")


def test_mismatched_line_counts_and_empty_lines_name_the_files(tmp_path):
    write_pair(tmp_path, "train", ["a dog", "a cat"], ["ein Hund"])
    write_pair(tmp_path, "valid", ["a dog"], ["ein Hund"])
    write_pair(tmp_path, "test", ["a dog", ""], ["ein Hund", "eine Katze"])
    with pytest.raises(DataFormatError, match=r"train\.en has 2 lines but .*train\.de has 1"):
        load_parallel(f"folder:{tmp_path}", "en", "de")
    with pytest.raises(DataFormatError, match=r"test\.en, line 2: empty sentence"):
        load_parallel(f"folder:{tmp_path}", "en", "de", splits=("test",))


def test_a_bad_corpus_is_a_clear_error_on_the_command_line(tmp_path, capsys):
    write_pair(tmp_path, "train", ["a dog", "a cat"], ["ein Hund"])
    write_pair(tmp_path, "valid", ["a dog"], ["ein Hund"])
    write_pair(tmp_path, "test", ["a dog"], ["ein Hund"])
    result = run_main(APP, "train", "--dataset", f"folder:{tmp_path}", "--tracking-uri",
                      new_store(tmp_path / "store", "x"), capsys=capsys)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "train.en has 2 lines" in result.stderr and "train.de has 1" in result.stderr


def test_generation_never_writes_padding_oov_or_start():
    words = Vocabulary(["ja", "nein"], bounds=True)
    args = runner.build_parser(APP).parse_args(
        ["train", "--units", "8", "--embedding-dim", "8", "--target-embedding-dim", "8"]
    )
    model = seq2seq.build_model(args, 10, len(words), name="translator")
    logits = model.get_layer(seq2seq.LOGITS)
    kernel, bias = logits.get_weights()
    bias[:] = 0.0
    bias[[words.pad_id, words.oov_id, words.start_id]] = 50.0  # the untrained model's favourites
    bias[words.id("ja")] = 10.0  # then "ja" before END
    logits.set_weights([kernel, bias])
    for beam in (1, 3):
        for units in Translator(model, words, beam_width=beam).units([[2, 3, 4], [5]]):
            assert units and set(units) <= {"ja", "nein"}


def test_smoothed_crossentropy_is_keras_categorical_crossentropy_on_one_hot_targets():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 7)).astype("float32")
    ids = rng.integers(0, 7, size=(3, 5))
    weights = (rng.random((3, 5)) > 0.3).astype("float32")  # padding steps weigh 0
    for smoothing in (0.0, 0.1, 0.4):
        reference = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
        expected = reference(np.eye(7)[ids], logits, sample_weight=weights)
        loss = seq2seq.SmoothedCrossentropy(smoothing)
        assert float(loss(ids, logits, sample_weight=weights)) == pytest.approx(float(expected), rel=1e-5)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, seq2seq.SmoothedCrossentropy) and restored.smoothing == 0.4


def test_time_limit_stops_before_an_epoch_that_would_pass_it():
    clock = iter(np.arange(0.0, 1000.0, 5.0))  # each call 5 s later: an epoch takes 5 s, 10 s apart
    limit = TimeLimit(0.5, clock=lambda: float(next(clock)))
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    history = model.fit(np.zeros((4, 1)), np.zeros((4, 1)), epochs=10, verbose=0, callbacks=[limit])
    # Epochs end at 10, 20, 30 s: after the third, one more (5 s) would end past 30 s.
    assert len(history.history["loss"]) == 3


def toy_corpus(folder, seed=0):
    rng = random.Random(seed)
    english = sorted(LEXICON)
    for split, count in (("train", 1200), ("valid", 60), ("test", 60)):
        sources = [" ".join(rng.choice(english) for _ in range(rng.randint(2, 6))) + "." for _ in range(count)]
        targets = [" ".join(LEXICON[w] for w in s[:-1].split()) + "." for s in sources]
        write_pair(folder, split, sources, targets)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("translation")
    toy_corpus(root / "toy")
    tracking_uri = new_store(root, "test-translation")
    code = runner.main(APP, [
        "train", "--dataset", f"folder:{root / 'toy'}", "--unit", "words", "--min-word-count", "1",
        "--units", "32", "--embedding-dim", "32", "--target-embedding-dim", "32", "--batch-size", "32",
        "--learning-rate", "0.01", "--dropout", "0.0", "--word-dropout", "0.0", "--epochs", "6", "--label-smoothing", "0.1",
        "--beam-width", "3", "--tracking-uri", tracking_uri, "--experiment", "test-translation",
        "--checkpoint-dir", str(root / "checkpoints"), "--verbose", "0",
    ])  # fmt: skip
    assert code == 0
    run = single_run(tracking_uri, "test-translation")
    return {"root": root, "tracking_uri": tracking_uri, "run": run, "uri": f"runs:/{run.info.run_id}/model"}


def test_a_trained_model_translates_the_toy_test_split(trained):
    metrics = trained["run"].data.metrics
    assert metrics["test_bleu"] > 0.9 and metrics["test_chrf"] > 0.9
    artifacts = {a.path for a in _artifacts(trained)}
    assert {"reports/translations_test.md", "reports/attention_test.png", "reports/scores_test.txt"} <= artifacts


def _artifacts(trained):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(trained["tracking_uri"])
    return client.list_artifacts(trained["run"].info.run_id, "reports")


def test_predict_translates_raw_text_from_the_logged_model(trained, capsys):
    result = run_main(APP, "predict", "--model", trained["uri"], "--tracking-uri", trained["tracking_uri"],
                      "--json", "the big dog sleeps now.", "the ☃ bird sings.", capsys=capsys)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert lines[0] == {"text": "the big dog sleeps now.", "translation": "der große Hund schläft jetzt."}
    assert lines[1]["translation"].endswith(".")  # an unknown character: a translation, no crash
    result = run_main(APP, "predict", "--model", trained["uri"], "--tracking-uri", trained["tracking_uri"],
                      " ", capsys=capsys)  # fmt: skip
    assert result.returncode == 2 and "error:" in result.stderr and "Traceback" not in result.stderr


def test_mlflow_models_serve_translates_as_predict_prints_and_checks_its_params(trained, tmp_path, capsys):
    from tests.servers import check_served_as_predicted, invoke

    def bad_requests(url):
        status, answer = invoke(url, {"inputs": {"text": ["the dog."]}, "params": {"beam_width": -1}})
        assert status == 400 and "params beam_width" in answer["message"], answer
        status, answer = invoke(url, {"inputs": {"text": ["   "]}})
        assert status == 400 and "input 1 is empty" in answer["message"], answer

    records = check_served_as_predicted(APP, trained["uri"], trained["tracking_uri"], ["the big dog sleeps now."],
                                        tmp_path / "serve.log", capsys, params={"beam_width": 3, "length_alpha": 0.5},
                                        flags=["--beam-width", "3", "--length-alpha", "0.5"], then=bad_requests)  # fmt: skip
    assert records[0]["translation"] == "der große Hund schläft jetzt."


def test_evaluate_scores_the_saved_model_as_sacrebleu_does(trained):
    result = cli("translation", "evaluate", "--model", trained["uri"], "--tracking-uri", trained["tracking_uri"],
                 "--dataset", f"folder:{trained['root'] / 'toy'}", "--beam-width", "3", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "tok:13a" in result.stdout and "case:mixed" in result.stdout
    scores = json.loads(result.stdout[result.stdout.index("{") :])
    # The saved model, reading raw text through its own tokenizer, scores as the trained one did.
    assert scores["bleu"] == pytest.approx(trained["run"].data.metrics["test_bleu"], abs=1e-6)
    perfect = translation_metrics(["der Hund läuft."], ["der Hund läuft."])
    assert perfect == pytest.approx({"bleu": 1.0, "chrf": 1.0})


def test_tokenized_bleu_follows_the_moses_convention():
    # What Moses' Perl scripts give (normalize-punctuation, tokenizer -a -no-escape, lowercase):
    # the hyphen split as @-@, quotes and the full stop apart, the German „“ normalized to ".
    assert moses_lowercased(["Ein selbst-gebautes „Boot“."], "de") == ['ein selbst @-@ gebautes " boot " .']
    # Case and tokenization alone: below 1 in cased sacreBLEU, exactly 1 once both sides are
    # prepared the papers' way; a wrong word stays wrong there.
    scores = translation_metrics(["Ein Hund-Rennen."], ["ein Hund-Rennen ."], "de")
    assert scores["bleu"] < 1 and scores["bleu_tok"] == pytest.approx(1.0)
    wrong = tokenized_bleu(["eine Katze rennt jetzt"], ["ein Hund rennt jetzt"], "de")
    assert wrong < 0.5
