"""Property-based tests (Hypothesis) of every loader: random bytes, truncations, wrong encodings
and damaged archives end in the project's own error types or counted skips, never in another
exception. Each test's tally of outcomes goes to test-artifacts/properties/ (tests/properties.py)."""

import functools
import io
import zipfile

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.app import UserError
from pipelines.audio import AudioError, load_audio
from pipelines.classification import load_csv, load_folder
from pipelines.keyphrases import read_liaad_zip
from pipelines.slots import read_files
from pipelines.sources import DataFormatError, DataNotFoundError
from tests.properties import Tally, wav_bytes
from tests.support import SHARED_DATA

OWN_ERRORS = (DataFormatError, DataNotFoundError)
EXAMPLES = 150
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

texts = st.text(st.characters(codec="utf-8"), max_size=60)
encodings = st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"])
whole_or_cut = st.just(1.0) | st.floats(0.0, 1.0)  # a whole file half the time, else a truncation


@pytest.fixture(scope="module")
def tallies():
    made = {}
    yield lambda name: made.setdefault(name, Tally(name))
    for tally in made.values():
        print(tally.name, tally.write())


def _encode(text, encoding):
    return text.encode(encoding, errors="replace")


def _cut(data, fraction):
    return data[: int(len(data) * fraction)]


# CSV (sentiment's csv:PATH) -------------------------------------------------------------------
plain = st.text("abc xyz,'\"\n", min_size=1, max_size=30)
rows = st.lists(st.tuples(plain | texts, st.sampled_from(["pos", "neg", "pos", "neg", "", "x,y", '"q"'])), max_size=12)


@SETTINGS
@given(rows=rows, encoding=encodings, cut=whole_or_cut, noise=st.just(b"") | st.binary(max_size=40))
def test_any_csv_loads_or_is_refused_with_a_data_error(tmp_path, tallies, rows, encoding, cut, noise):
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    data = _cut(_encode(buffer.getvalue(), encoding), cut) + noise
    path = tmp_path / "reviews.csv"
    path.write_bytes(data)
    tally = tallies("csv")
    try:
        dataset = load_csv(path)
    except OWN_ERRORS as error:
        assert str(path) in str(error) or "csv:" in str(error)
        tally.refused(error)
        return
    assert len(dataset.labels) >= 2 and all(e.text.strip() and e.label.strip() for e in dataset.examples)
    tally("loaded")


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes_as_a_csv_never_raise_another_exception(tmp_path, tallies, data):
    path = tmp_path / "random.csv"
    path.write_bytes(data)
    tally = tallies("csv_random_bytes")
    try:
        load_csv(path)
        tally("loaded")
    except OWN_ERRORS as error:
        tally.refused(error)


# Folder of class files (sentiment's folder:PATH) -------------------------------------------------
@SETTINGS
@given(
    files=st.dictionaries(
        st.sampled_from(["pos.txt", "neg.txt", "mid.txt", ".hidden"]),
        plain.map(str.encode) | st.binary(max_size=80),
    )
)
def test_any_class_folder_loads_or_is_refused(tmp_path_factory, tallies, files):
    folder = tmp_path_factory.mktemp("classes")
    for name, data in files.items():
        (folder / name).write_bytes(data)
    tally = tallies("class_folder")
    try:
        dataset = load_folder(folder)
        assert all(e.text for e in dataset.examples)
        tally("loaded")
    except OWN_ERRORS as error:
        tally.refused(error)


# LIAAD keyphrase zips (keywords' liaad:PATH.zip) ---------------------------------------------------
@functools.cache
def inspec_sample():
    """The bytes of a real LIAAD zip of Inspec's first 12 abstracts (a function, not a fixture:
    Hypothesis would print a fixture's 30 KB with every failing case)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(SHARED_DATA / "keyphrase" / "Inspec.zip") as source, zipfile.ZipFile(buffer, "w") as target:
        names = sorted(n for n in source.namelist() if n.endswith((".txt", ".key")))
        ids = sorted({n.rsplit("/", 1)[1].split(".")[0] for n in names if "docsutf8/" in n})[:12]
        for doc_id in ids:
            for name in (f"Inspec/docsutf8/{doc_id}.txt", f"Inspec/keys/{doc_id}.key"):
                target.writestr(name, source.read(name), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


@pytest.mark.data
@SETTINGS
@given(cut=whole_or_cut, flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 255)), max_size=4))
def test_a_damaged_keyphrase_zip_is_refused_or_read(tmp_path, tallies, cut, flips):
    data = bytearray(inspec_sample())
    for where, mask in flips:
        data[int(where * (len(data) - 1))] ^= mask
    path = tmp_path / "damaged.zip"
    path.write_bytes(_cut(bytes(data), cut) if cut < 1.0 else bytes(data))
    tally = tallies("liaad_zip_damaged")
    try:
        dataset = read_liaad_zip(path)
        assert all(d.text.strip() and d.keyphrases for d in dataset.documents)
        tally("loaded")
    except OWN_ERRORS as error:
        assert str(path) in str(error)
        tally.refused(error)


documents = st.dictionaries(
    st.sampled_from(["1", "2", "3", "a b", "../x", "4"]),
    st.tuples(st.binary(max_size=60) | texts.map(str.encode), st.binary(max_size=40) | texts.map(str.encode)),
    max_size=5,
)


@SETTINGS
@given(documents=documents, layout=st.sampled_from(["Set/docsutf8/{}.txt", "docsutf8/{}.txt", "Set/{}.txt"]))
def test_any_liaad_layout_loads_or_is_refused(tmp_path, tallies, documents, layout):
    path = tmp_path / "set.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for doc_id, (text, keys) in documents.items():
            archive.writestr(layout.format(doc_id), text)
            archive.writestr(layout.format(doc_id).replace("docsutf8", "keys").replace(".txt", ".key"), keys)
    tally = tallies("liaad_zip_random")
    try:
        read_liaad_zip(path)
        tally("loaded")
    except OWN_ERRORS as error:
        tally.refused(error)


# Slot-filling files (seq.in, seq.out, label) ---------------------------------------------------
words = st.lists(st.sampled_from(["show", "flights", "to", "denver", "é", "\u00a0", "", "\t"]), min_size=1, max_size=6)
tags = st.lists(st.sampled_from(["O", "B-city", "I-city", "B-", "X", "b-city"]), max_size=6)


intents = st.sampled_from(["flight", "atis_fare", "flight", ""])
aligned = words.flatmap(
    lambda w: st.tuples(
        st.just(w), st.lists(st.sampled_from(["O", "B-city", "I-city"]), min_size=len(w), max_size=len(w)), intents
    )
)


@SETTINGS
@given(
    lines=st.lists(aligned | st.tuples(words, tags, intents), max_size=6),
    encoding=encodings,
    cut=whole_or_cut,
)
def test_any_slot_files_load_or_are_refused(tmp_path, tallies, lines, encoding, cut):
    paths = [tmp_path / name for name in ("seq.in", "seq.out", "label")]
    columns = [[" ".join(w) for w, _, _ in lines], [" ".join(t) for _, t, _ in lines], [i for _, _, i in lines]]
    for index, (path, column) in enumerate(zip(paths, columns)):
        data = _encode("\n".join(column) + "\n", encoding)
        path.write_bytes(_cut(data, cut) if index == 1 else data)
    tally = tallies("slot_files")
    try:
        examples = read_files(*paths)
        assert all(len(e.words) == len(e.tags) and e.intent for e in examples)
        tally("loaded")
    except OWN_ERRORS as error:
        tally.refused(error)


# Audio files (speech's recordings and predict inputs) ------------------------------------------------
@SETTINGS
@given(
    frames=st.integers(0, 4000),
    rate=st.sampled_from([8000, 16000, 44100]),
    channels=st.integers(1, 2),
    cut=whole_or_cut,
    noise=st.just(b"") | st.binary(max_size=64),
)
def test_any_wav_bytes_load_as_mono_8khz_or_are_refused(tmp_path, tallies, frames, rate, channels, cut, noise):
    data = _cut(wav_bytes(frames, rate, channels), cut) + noise
    path = tmp_path / "clip.wav"
    path.write_bytes(data)
    tally = tallies("audio")
    try:
        audio = load_audio(path)
        assert audio.ndim == 1 and len(audio) > 0 and np.all(np.isfinite(audio))
        tally("loaded")
    except AudioError as error:
        assert str(path) in str(error)
        tally.refused(error)


# Model folders (--model) ----------------------------------------------------------------------------
@SETTINGS
@given(
    description=st.one_of(
        st.binary(max_size=120),
        st.recursive(st.none() | st.booleans() | texts, lambda inner: st.dictionaries(texts, inner, max_size=3)).map(
            lambda value: yaml.safe_dump({"flavors": value}).encode()
        ),
        st.fixed_dictionaries({"data": texts, "save_exported_model": st.booleans()}).map(
            lambda flavor: yaml.safe_dump({"flavors": {"keras": flavor}}).encode()
        ),
    ),
    keras_file=st.binary(max_size=200),
)
def test_any_mlflow_model_folder_loads_or_is_refused(tmp_path_factory, tallies, description, keras_file):
    from apps import saved

    folder = tmp_path_factory.mktemp("model")
    (folder / "MLmodel").write_bytes(description)
    (folder / "data").mkdir()
    (folder / "data" / "model.keras").write_bytes(keras_file)
    tally = tallies("mlflow_model_folder")
    try:
        saved.load_model(str(folder))
        tally("loaded")
    except UserError as error:
        assert "--model" in str(error)
        tally.refused(error)
