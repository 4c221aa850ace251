"""Where data sets are found, and how they are downloaded when they are not.

Lookup order for a data set's file `NAME/REL_PATH`:
  1. the data directory: `--data-dir`, else `$RNN_SUITE_DATA` (a local copy,
     e.g. `../shared/data`, read in place and never written to);
  2. the user cache: `$RNN_SUITE_CACHE`, else `$XDG_CACHE_HOME/rnn-suite`, else
     `~/.cache/rnn-suite`;
  3. a download into the cache from the data set's public source (or from
     `$RNN_SUITE_MIRROR/NAME/REL_PATH`), checked against its SHA-256 and
     written atomically, so an interrupted download never leaves a file behind.

`RNN_SUITE_OFFLINE=1` skips step 3.
"""

import hashlib
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

DATA_ENV = "RNN_SUITE_DATA"
CACHE_ENV = "RNN_SUITE_CACHE"
MIRROR_ENV = "RNN_SUITE_MIRROR"
OFFLINE_ENV = "RNN_SUITE_OFFLINE"
# The checksums of files first fetched without a published one, per cache directory.
RECORDED_CHECKSUMS = "checksums.json"


class DataNotFoundError(FileNotFoundError):
    """A data set's files are neither on disk nor downloadable."""


class ChecksumError(IOError):
    """A downloaded file is not the file that was published."""


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class RemoteDataset:
    """A data set's files: paths relative to the data set's folder, URL and checksum of each.

    `sha256[rel]` is None for a file whose checksum is not known: it is
    downloaded, reported as unverified, and its checksum recorded in the cache.
    `optional` files may be missing: the data set is usable without them.
    """

    name: str
    base_url: str
    sha256: dict = field(default_factory=dict)
    optional: tuple = ()

    def url(self, rel_path):
        mirror = os.environ.get(MIRROR_ENV)
        if mirror:
            return f"{mirror.rstrip('/')}/{self.name}/{rel_path}"
        return f"{self.base_url.rstrip('/')}/{rel_path}"


def cache_dir():
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "rnn-suite"


def data_roots(data_dir=None):
    """The folders searched for data sets, in order: data directory, then cache."""
    roots = []
    explicit = data_dir or os.environ.get(DATA_ENV)
    if explicit:
        roots.append(Path(explicit).expanduser())
    roots.append(cache_dir())
    return roots


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url, destination, sha256=None, timeout=30, progress=True):
    """Downloads `url` to `destination` atomically, checking `sha256` when given.

    The bytes go to a temporary file beside `destination`, which replaces it
    only when the download is complete (as long as the server announced) and
    the checksum matches; on any failure the temporary file is removed.
    Returns the file's SHA-256.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            expected_size = response.headers.get("Content-Length")
            expected_size = int(expected_size) if expected_size else None
            received = 0
            with tqdm(
                total=expected_size,
                unit="B",
                unit_scale=True,
                desc=f"download {destination.name}",
                disable=not progress,
                leave=False,
                file=sys.stderr,
            ) as bar:
                while True:
                    block = response.read(1 << 16)
                    if not block:
                        break
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
            if expected_size is not None and received != expected_size:
                raise ConnectionError(f"download of {url} was interrupted: got {received} of {expected_size} bytes")
        actual = digest.hexdigest()
        if sha256 is not None and actual != sha256:
            raise ChecksumError(
                f"{url}: SHA-256 is {actual}, expected {sha256}. The file was not saved; "
                f"the source may have changed or the download was corrupted."
            )
        os.replace(temporary, destination)
        return actual
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _record_checksum(root, key, value):
    path = root / RECORDED_CHECKSUMS
    recorded = json.loads(path.read_text()) if path.exists() else {}
    recorded[key] = value
    path.write_text(json.dumps(recorded, indent=2, sort_keys=True))


def locate(dataset, rel_paths, data_dir=None, progress=True):
    """Finds (or downloads) each of `dataset`'s files; returns {rel_path: Path or None}.

    The data set's optional files that cannot be had come back as None (with a warning on
    stderr); any other missing file raises `DataNotFoundError`, which lists
    every missing file, where it was looked for, and how to fix it.
    """
    roots = data_roots(data_dir)
    found, missing = {}, []
    for rel in rel_paths:
        candidates = [root / dataset.name / rel for root in roots]
        existing = next((path for path in candidates if path.is_file()), None)
        if existing is not None:
            found[rel] = existing
        else:
            missing.append(rel)

    failures = {}
    if missing and os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        failures = {rel: f"{OFFLINE_ENV} is set" for rel in missing}
    elif missing:
        target = cache_dir() / dataset.name
        for rel in missing:
            url = dataset.url(rel)
            expected = dataset.sha256.get(rel)
            try:
                actual = download(url, target / rel, sha256=expected, progress=progress)
            except (urllib.error.URLError, OSError, ConnectionError) as error:
                failures[rel] = f"{url}: {error}"
                continue
            if expected is None:
                print(
                    f"warning: {dataset.name}/{rel} has no published checksum; downloaded "
                    f"unverified, SHA-256 {actual} recorded in {cache_dir() / RECORDED_CHECKSUMS}",
                    file=sys.stderr,
                )
                _record_checksum(cache_dir(), f"{dataset.name}/{rel}", actual)
            found[rel] = target / rel

    hard = [rel for rel in failures if rel not in dataset.optional]
    if hard:
        searched = ", ".join(str(root / dataset.name) for root in roots)
        reasons = "\n".join(f"  {dataset.name}/{rel}: {failures[rel]}" for rel in hard)
        raise DataNotFoundError(
            f"Data set {dataset.name!r} is incomplete: {len(hard)} file(s) missing.\n"
            f"Looked in: {searched}\nDownload failed:\n{reasons}\n"
            f"If you have a local copy, point the suite at the folder that holds "
            f"'{dataset.name}/': pass --data-dir PATH or set {DATA_ENV}=PATH "
            f"(e.g. {DATA_ENV}=../shared/data)."
        )
    for rel in rel_paths:
        if rel not in found:
            print(
                f"warning: {dataset.name}/{rel} is not available ({failures.get(rel)}); continuing without it",
                file=sys.stderr,
            )
            found[rel] = None
    return found
