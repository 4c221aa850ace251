"""Parallel corpora for translation: Multi30k, or any folder of line-aligned files.

    multi30k      Multi30k task 1 (Elliott et al. 2016): image captions in English, German and
                  French; train 29,000, valid (val) 1,014, test (test_2016_flickr) 1,000 pairs
    folder:PATH   PATH/{train,valid,test}.LANG (or .LANG.gz), one sentence a line

Line N of one side translates line N of the other. A pair of files whose line counts differ, or
an empty line, is an error naming the files (the counts, the line); nothing is guessed.
"""

import gzip
from dataclasses import dataclass
from pathlib import Path

from pipelines.sources import DataFormatError, DataNotFoundError, RemoteDataset, locate

MULTI30K = RemoteDataset(
    "multi30k",
    "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw",
    {
        rel: digest
        for digest, rel in (
            line.split() for line in (Path(__file__).parent / "manifests" / "multi30k.sha256").read_text().splitlines()
        )
    },
)
MULTI30K_LANGUAGES = ("en", "de", "fr")
MULTI30K_FILES = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class ParallelCorpus:
    source: str  # language codes
    target: str
    pairs: dict  # split -> [(source sentence, target sentence)]
    files: dict  # split -> (source path, target path)


def load_parallel(spec, source, target, data_dir=None, splits=SPLITS):
    """The sentence pairs of each split of `spec` ("multi30k" or "folder:PATH")."""
    if source == target:
        raise DataFormatError(f"--source and --target are both {source!r}: choose two languages")
    files = {}
    if spec == "multi30k":
        for language in (source, target):
            if language not in MULTI30K_LANGUAGES:
                raise DataNotFoundError(
                    f"Multi30k has no {language!r} side: choose from {', '.join(MULTI30K_LANGUAGES)}"
                )
        wanted = {split: [f"{MULTI30K_FILES[split]}.{lang}.gz" for lang in (source, target)] for split in splits}
        found = locate(MULTI30K, [rel for rels in wanted.values() for rel in rels], data_dir=data_dir)
        files = {split: tuple(found[rel] for rel in rels) for split, rels in wanted.items()}
    elif spec.startswith("folder:"):
        folder = Path(spec.partition(":")[2]).expanduser()
        for split in splits:
            files[split] = tuple(_side(folder, split, language) for language in (source, target))
    else:
        raise DataNotFoundError(f"--dataset {spec!r}: use multi30k or folder:PATH")
    pairs = {split: read_pairs(*paths) for split, paths in files.items()}
    return ParallelCorpus(source, target, pairs, files)


def _side(folder, split, language):
    for name in (f"{split}.{language}", f"{split}.{language}.gz"):
        if (folder / name).is_file():
            return folder / name
    raise DataNotFoundError(f"{folder}: no {split}.{language} (or {split}.{language}.gz); the folder needs "
                            f"{', '.join(f'{s}.{language}' for s in SPLITS)}, one sentence a line")  # fmt: skip


def read_lines(path):
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            return [line.rstrip("\n").rstrip("\r") for line in lines]
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not UTF-8 text ({error})") from None
    except (OSError, EOFError) as error:
        raise DataFormatError(f"{path}: cannot be read ({error})") from None


def read_pairs(source_path, target_path):
    """[(source, target)] of two line-aligned files, checked: equal line counts, no empty line."""
    sources, targets = read_lines(source_path), read_lines(target_path)
    if len(sources) != len(targets):
        raise DataFormatError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}: line N of one "
            "must translate line N of the other"
        )
    for path, lines in ((source_path, sources), (target_path, targets)):
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                raise DataFormatError(f"{path}, line {number}: empty sentence (every line must hold one)")
    return [(s.strip(), t.strip()) for s, t in zip(sources, targets)]
