"""NLTK's corpora, read from the suite's data folders: `DATA/nltk_data` (`--data-dir` or
$RNN_SUITE_DATA), then the user cache, then NLTK's own path; downloaded into the cache when
missing, unless RNN_SUITE_OFFLINE is set."""

import os
import sys
from pathlib import Path

from pipelines.sources import DATA_ENV, OFFLINE_ENV, DataNotFoundError, cache_dir


def nltk_data_dirs(data_dir=None):
    """Where NLTK corpora are looked for: DATA/nltk_data, then the cache, then NLTK's own path."""
    folders = []
    explicit = data_dir or os.environ.get(DATA_ENV)
    if explicit:
        folders.append(Path(explicit).expanduser() / "nltk_data")
    folders.append(cache_dir() / "nltk_data")
    return folders


def nltk_corpus(corpus, data_dir=None):
    """NLTK's reader of `corpus`, found in `nltk_data_dirs` or NLTK's own path, else downloaded
    (not with RNN_SUITE_OFFLINE set); an unknown name or an unavailable corpus is a DataNotFoundError."""
    import nltk

    for folder in reversed(nltk_data_dirs(data_dir)):
        if str(folder) not in nltk.data.path:
            nltk.data.path.insert(0, str(folder))
    from nltk.corpus.reader import CorpusReader
    from nltk.corpus.util import LazyCorpusLoader

    reader = getattr(nltk.corpus, corpus, None) if corpus.isidentifier() and not corpus.startswith("_") else None
    if not isinstance(reader, (LazyCorpusLoader, CorpusReader)):  # (hasattr would load a lazy one)
        raise DataNotFoundError(f"NLTK has no corpus named {corpus!r}")
    try:
        reader.ensure_loaded()
    except LookupError:
        if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
            searched = ", ".join(str(f) for f in nltk_data_dirs(data_dir))
            raise DataNotFoundError(
                f"NLTK corpus {corpus!r} is not on disk (looked in {searched} and NLTK's own path), and "
                f"{OFFLINE_ENV} is set, so it was not downloaded. Point {DATA_ENV} (or --data-dir) at the "
                f"folder holding nltk_data/corpora/{corpus}.zip, or unset {OFFLINE_ENV}."
            ) from None
        target = nltk_data_dirs(data_dir)[-1]
        print(f"NLTK corpus {corpus!r} not found; downloading it to {target}", file=sys.stderr)
        if not nltk.download(corpus, download_dir=str(target), quiet=True, raise_on_error=False):
            searched = ", ".join(str(f) for f in nltk_data_dirs(data_dir))
            raise DataNotFoundError(
                f"NLTK corpus {corpus!r} is neither on disk (looked in {searched} and NLTK's own "
                f"path) nor downloadable. If you have a copy, point {DATA_ENV} (or --data-dir) at "
                f"the folder holding nltk_data/corpora/{corpus}.zip, e.g. {DATA_ENV}=../shared/data."
            ) from None
        reader = getattr(nltk.corpus, corpus)
        reader.ensure_loaded()
    return reader
