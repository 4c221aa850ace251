"""Unlabelled English sentences from every text the suite reads, for the text auto-encoder.

A spec names one source or several joined by "+": `polarity+multi30k+treebank`.

    mr            sentence polarity (Pang & Lee 2005), labelled pos / neg
    polarity      the movie reviews of polarity v2.0, one sentence each, labelled by review
    multi30k      Multi30k's English training captions (never its val or test split)
    treebank      the treebank sample's training files (those the parsing app trains on)
    atis, snips   the slot-filling training sentences
    inspec        the Inspec training abstracts (Hulth's split), one sentence each
    nltk:NAME, csv:PATH, folder:PATH   any text the sentiment app reads, with its labels

Only training splits of the other apps' data sets are read, so an auto-encoder trained on them
has seen no test text of a task it may later help. Each source's sentences stay whole; the
auto-encoder's own held-out splits are drawn from them by a hash of the text (`split_of`), so a
sentence lands in the same split whatever else is read with it.
"""

import gzip
import hashlib
import re
from dataclasses import dataclass

from pipelines.parallel import MULTI30K
from pipelines.sources import DataFormatError, DataNotFoundError, locate

NAMED = ("mr", "polarity", "multi30k", "treebank", "atis", "snips", "inspec")
HELD_OUT = {"test": 2, "valid": 2}  # percent of the sentences in each held-out split (by hash)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass(frozen=True)
class Sentence:
    text: str
    source: str  # the spec part it came from
    label: str = ""  # its label where the source has labels (mr, polarity, nltk:, csv:, folder:)


def load_sentences(spec, data_dir=None):
    """The sentences of every part of `spec`, duplicates (within and across parts) dropped."""
    seen, sentences = set(), []
    for part in spec.split("+"):
        part = part.strip()
        if not part:
            raise DataNotFoundError(f"--dataset {spec!r}: an empty part between '+' signs")
        found = list(_read(part, data_dir))
        if not found:
            raise DataFormatError(f"--dataset {part}: no sentences")
        for sentence in found:
            key = sentence.text.strip().lower()
            if key and key not in seen:
                seen.add(key)
                sentences.append(sentence)
    return sentences


def split_of(text):
    """ "test", "valid" or "train": a fixed share of sentences by the MD5 of their lower-cased text."""
    bucket = int(hashlib.md5(text.strip().lower().encode("utf-8")).hexdigest(), 16) % 100
    if bucket < HELD_OUT["test"]:
        return "test"
    return "valid" if bucket < HELD_OUT["test"] + HELD_OUT["valid"] else "train"


def _read(part, data_dir):
    if part == "mr":
        yield from _labelled("sentence_polarity", part, data_dir)
    elif part == "polarity":
        yield from _labelled("movie_reviews", part, data_dir)
    elif part == "multi30k":
        path = locate(MULTI30K, ["train.en.gz"], data_dir=data_dir)["train.en.gz"]
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            yield from (Sentence(line.strip(), part) for line in lines if line.strip())
    elif part == "treebank":
        from pipelines.trees import DEFAULT_FILES, load_treebank

        for tree in load_treebank(data_dir, {"train": DEFAULT_FILES["train"]})["train"]:
            yield Sentence(" ".join(tree.leaves()), part)
    elif part in ("atis", "snips"):
        from pipelines.slots import load_slot_dataset

        for example in load_slot_dataset(part, data_dir)["train"]:
            yield Sentence(" ".join(example.words), part)
    elif part == "inspec":
        from pipelines.keyphrases import load_keyphrase_dataset

        for document in load_keyphrase_dataset("inspec", data_dir).documents:
            if document.split == "train":
                for text in _SENTENCE_END.split(" ".join(document.text.split())):
                    yield Sentence(text, part)
    elif part.partition(":")[0] in ("nltk", "csv", "folder"):
        from pipelines.classification import load_text_dataset

        for example in load_text_dataset(part, data_dir).examples:
            yield Sentence(example.text, part, example.label)
    else:
        raise DataNotFoundError(
            f"--dataset {part!r}: no such text source; use {', '.join(NAMED)}, nltk:NAME, csv:PATH or "
            "folder:PATH, several joined by '+'"
        )


def _labelled(corpus, part, data_dir):
    """An NLTK categorized corpus of tokenized text, one sentence a line (both Pang & Lee corpora),
    each sentence labelled by its file's category."""
    from pipelines.nltk_corpora import nltk_corpus

    reader = nltk_corpus(corpus, data_dir)
    for label in reader.categories():
        for fileid in reader.fileids(categories=label):
            for line in reader.raw(fileid).splitlines():
                if line.strip():
                    yield Sentence(" ".join(line.split()), part, label)
