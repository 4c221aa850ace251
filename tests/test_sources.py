"""Data location and download, for real, against HTTP servers on 127.0.0.1."""

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from pipelines import sources
from pipelines.slots import SLOT_DATASETS, load_slot_dataset
from pipelines.sources import ChecksumError, DataNotFoundError, RemoteDataset, download, locate
from tests.support import SHARED_DATA


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Corrupting(_Quiet):
    """Serves every file with one byte changed."""

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return self.send_error(404)
        body = bytearray(path.read_bytes())
        body[0] ^= 0xFF
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(bytes(body))


class _Interrupting(_Quiet):
    """Announces the whole file, sends half of it, then closes the connection."""

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def serve():
    """serve(handler) -> base URL of a server on 127.0.0.1 over the shared data folder."""
    servers = []

    def start(handler=_Quiet):
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(SHARED_DATA))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(sources.CACHE_ENV, str(cache))
    monkeypatch.delenv(sources.DATA_ENV, raising=False)
    monkeypatch.delenv(sources.OFFLINE_ENV, raising=False)
    return cache


def test_atis_is_downloaded_verified_and_cached(serve, empty_cache, monkeypatch):
    monkeypatch.setenv(sources.MIRROR_ENV, serve())
    splits = load_slot_dataset("atis", progress=False)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [4478, 500, 893]
    for rel, expected in SLOT_DATASETS["atis"].sha256.items():
        cached = empty_cache / "atis" / rel
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == expected
        assert cached.read_bytes() == (SHARED_DATA / "atis" / rel).read_bytes()
    # Second time: from the cache, with the network gone.
    monkeypatch.setenv(sources.MIRROR_ENV, "http://127.0.0.1:9")
    assert len(load_slot_dataset("atis", progress=False)["test"]) == 893


def test_a_local_copy_is_read_in_place_without_downloading(empty_cache, monkeypatch):
    monkeypatch.setenv(sources.MIRROR_ENV, "http://127.0.0.1:9")
    splits = load_slot_dataset("atis", data_dir=SHARED_DATA)
    assert len(splits["train"]) == 4478
    assert not empty_cache.exists()


def test_checksum_mismatch_is_an_error_and_saves_nothing(serve, tmp_path):
    url = serve(_Corrupting) + "/atis/valid/label"
    destination = tmp_path / "label"
    with pytest.raises(ChecksumError, match="SHA-256"):
        download(url, destination, sha256=SLOT_DATASETS["atis"].sha256["valid/label"], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_leaves_no_file_and_a_retry_succeeds(serve, tmp_path):
    destination = tmp_path / "seq.in"
    expected = SLOT_DATASETS["atis"].sha256["train/seq.in"]
    with pytest.raises((ConnectionError, OSError)):
        download(serve(_Interrupting) + "/atis/train/seq.in", destination, expected, progress=False)
    assert list(tmp_path.iterdir()) == []
    assert download(serve() + "/atis/train/seq.in", destination, expected, progress=False) == expected
    assert destination.read_bytes() == (SHARED_DATA / "atis/train/seq.in").read_bytes()


def test_offline_error_names_missing_files_and_how_to_point_at_a_copy(empty_cache, monkeypatch):
    monkeypatch.setenv(sources.MIRROR_ENV, "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(DataNotFoundError) as error:
        load_slot_dataset("atis", progress=False)
    message = str(error.value)
    assert "atis/train/seq.in" in message and "atis/test/label" in message
    assert "RNN_SUITE_DATA" in message and "--data-dir" in message


def test_missing_optional_test_split_is_reported_not_fatal(empty_cache, monkeypatch, capsys):
    # The shared copy of SNIPS has no test split.
    monkeypatch.setenv(sources.OFFLINE_ENV, "1")
    splits = load_slot_dataset("snips", data_dir=SHARED_DATA)
    assert splits["test"] is None
    assert len(splits["train"]) == 13084 and len(splits["valid"]) == 700
    assert "snips/test/seq.in is not available" in capsys.readouterr().err


def test_file_without_published_checksum_is_recorded(serve, empty_cache, monkeypatch, capsys):
    monkeypatch.setenv(sources.MIRROR_ENV, serve())
    dataset = RemoteDataset("atis", "https://example.invalid", {"valid/label": None})
    found = locate(dataset, ["valid/label"], progress=False)
    assert found["valid/label"].read_bytes() == (SHARED_DATA / "atis/valid/label").read_bytes()
    assert "no published checksum" in capsys.readouterr().err
    recorded = (empty_cache / sources.RECORDED_CHECKSUMS).read_text()
    assert SLOT_DATASETS["atis"].sha256["valid/label"] in recorded
