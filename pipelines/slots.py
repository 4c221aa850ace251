"""Slot-filling data: the ATIS / SNIPS format of the SlotGated-SLU repository.

Each split is a folder with three files of one example per line:
  seq.in   the words, separated by spaces
  seq.out  one IOB slot tag per word
  label    the intent
"""

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipelines.sources import DataFormatError, DataNotFoundError, RemoteDataset, locate
from pipelines.text import (
    character_id_rows,
    encode_words,
    example_batches,
    signature_strings,
    word_inputs,
)
from pipelines.vocab import Vocabulary

SPLITS = ("train", "valid", "test")
FILES = ("seq.in", "seq.out", "label")
_SOURCE = "https://raw.githubusercontent.com/MiuLab/SlotGated-SLU/master/data"

SLOT_DATASETS = {
    "atis": RemoteDataset(
        "atis",
        f"{_SOURCE}/atis",
        {
            "train/seq.in": "3a670980841b21ab39088b2595efc17d487cdc45769c075a3e5f9458bba28c7f",
            "train/seq.out": "14c7131bd66562f797dbd7189bc7358f0cf354c6afb0785a9ab973c35b58f34c",
            "train/label": "d0a771547665eecbdf9f96ea015ef07d1f6ee9f063e861020dafabb3c2a04377",
            "valid/seq.in": "c7435b96e7948393608c34819628e863c5338f11ca68e8f896d2cc041d8e17f8",
            "valid/seq.out": "83ccff3e36f83a993f8e5b5b82adf3256076f234abda4d784051381d7ac76922",
            "valid/label": "06957cfe6fdffac84f8280bc3a1f8ca85c85631b363817aa4543aac611f8addf",
            "test/seq.in": "4b2119fc59c37f9398c6605db435d4f467505009e6ee3e5af04fed09f39dc397",
            "test/seq.out": "a4690d6bceadc06876d1ff99bc401744aa981cb321e598ae12a3859d7be53254",
            "test/label": "ce4bfe6590d9498e1078f30b4137d3e8b3e94277b444b26360c0bf2e9e282761",
        },
    ),
    "snips": RemoteDataset(
        "snips",
        f"{_SOURCE}/snips",
        {
            "train/seq.in": "04ad1e3f2121d83c6478f9a4b17d2dbdc21d06d6127f73cb7af835ed733f9855",
            "train/seq.out": "fd5f2121d8055827e5d6b3d3bac30f3d7e94e82a5d437751960cbdd9e1b4f6d3",
            "train/label": "bfd7df6cf9dd76c5da5d8b61bc85f90386197bdd3d7510c1d324c051537b962f",
            "valid/seq.in": "64e0f6d8ad8aab3a3828164d7d53731a0993d3ca1aed437ceaca6d3d568d410e",
            "valid/seq.out": "712e6d34feb8d52d208b820a5f8bae6e6ff990f08374507dfde22de389088319",
            "valid/label": "9c1dd041216f647bcfca838aaf1a48eb5781e4404256d31ff07cd38a5436c52f",
            # No copy of SNIPS' test split was at hand to take its checksums from.
            "test/seq.in": None,
            "test/seq.out": None,
            "test/label": None,
        },
        optional=("test/seq.in", "test/seq.out", "test/label"),
    ),
}


@dataclass(frozen=True)
class SlotExample:
    words: tuple
    tags: tuple
    intent: str


def _read_lines(path):
    """The file's lines, decoded as UTF-8; an undecodable line is an error naming it."""
    raw = Path(path).read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    decoded = []
    for number, line in enumerate(lines, start=1):
        try:
            decoded.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as error:
            raise DataFormatError(
                f"{path}:{number}: not valid UTF-8 (byte {line[error.start]:#04x} at "
                f"column {error.start + 1}); save the file as UTF-8."
            ) from None
    return decoded


def read_split(folder):
    """Reads one split folder into a list of `SlotExample`s, checking every line."""
    folder = Path(folder)
    return read_files(folder / "seq.in", folder / "seq.out", folder / "label")


def read_files(words_path, tags_path, intents_path):
    words_lines = _read_lines(words_path)
    tags_lines = _read_lines(tags_path)
    intent_lines = _read_lines(intents_path)
    counts = {words_path: len(words_lines), tags_path: len(tags_lines), intents_path: len(intent_lines)}
    if len(set(counts.values())) != 1:
        detail = ", ".join(f"{path}: {count}" for path, count in counts.items())
        raise DataFormatError(f"the files of one split must have as many lines each; got {detail}")
    examples = []
    for number, (words_line, tags_line, intent) in enumerate(zip(words_lines, tags_lines, intent_lines), start=1):
        words, tags, intent = words_line.split(), tags_line.split(), intent.strip()
        for path, content in ((words_path, words), (tags_path, tags), (intents_path, intent)):
            if not content:
                raise DataFormatError(f"{path}:{number}: empty line")
        if len(words) != len(tags):
            raise DataFormatError(
                f"{tags_path}:{number}: {len(tags)} tags for {len(words)} words in {words_path}:{number}"
            )
        for position, tag in enumerate(tags, start=1):
            if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
                raise DataFormatError(
                    f"{tags_path}:{number}: tag {position} {tag!r} is not an IOB tag ('O', 'B-type' or 'I-type')"
                )
        examples.append(SlotExample(tuple(words), tuple(tags), intent))
    return examples


def load_slot_dataset(name, data_dir=None, progress=True):
    """{split: [SlotExample]} for train, valid and test; test is None when unavailable.

    Files come from the data directory, the cache, or a download (see
    `pipelines.sources`).
    """
    if name not in SLOT_DATASETS:
        raise DataNotFoundError(f"unknown slot-filling data set {name!r}: choose one of {sorted(SLOT_DATASETS)}")
    dataset = SLOT_DATASETS[name]
    rel_paths = [f"{split}/{file}" for split in SPLITS for file in FILES]
    paths = locate(dataset, rel_paths, data_dir=data_dir, progress=progress)
    splits = {}
    for split in SPLITS:
        files = [paths[f"{split}/{file}"] for file in FILES]
        splits[split] = read_files(*files) if all(files) else None
    return splits


# Encoding and batching ---------------------------------------------------------------------


@dataclass
class SlotVocabularies:
    words: Vocabulary
    tags: Vocabulary
    intents: Vocabulary

    @classmethod
    def build(cls, train_examples, tokenizer, min_word_count=1, signatures=False):
        """From the training split only; valid/test words and labels not seen there are OOV.

        Words are normalized by `tokenizer` (a `SentenceTokenizer`), as raw text will be.
        `signatures`: the word vocabulary also holds the unknown-word signatures
        of the training words (`pipelines.text.word_signatures`), so an unseen
        word is read by its shape.
        """
        words = normalize_words((e.words for e in train_examples), tokenizer)
        shapes = {s for row in signature_strings(words) for s in row} if signatures else ()
        return cls(
            words=Vocabulary.build(words, min_word_count, signatures=shapes),
            tags=Vocabulary.build(e.tags for e in train_examples),
            intents=Vocabulary.build([[e.intent] for e in train_examples], padding=False),
        )

    def save(self, folder):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("words", "tags", "intents"):
            getattr(self, name).save(folder / f"{name}.json")

    @classmethod
    def load(cls, folder):
        folder = Path(folder)
        return cls(*(Vocabulary.load(folder / f"{name}.json") for name in ("words", "tags", "intents")))


def normalize_words(sequences, tokenizer):
    """Normalizes every word with the raw-sentence tokenizer's own ops."""
    sequences = [list(s) for s in sequences]
    if not sequences:
        return []
    folded = tokenizer.normalize(tf.ragged.constant(sequences, dtype=tf.string)).to_list()
    return [[w.decode("utf-8") for w in s] for s in folded]


def slot_dataset(examples, vocabularies, tokenizer, batch_size, shuffle_seed=None, max_chars=0):
    """Batches of {"index", "words", "tags", "intent"} ids, bucketed by sentence length.

    With signatures in the word vocabulary, also "signatures": each word's
    signature id, which word dropout puts in the word's place. With
    `max_chars`, also "chars": each word's `character_ids` (words, max_chars).
    """
    words = normalize_words((e.words for e in examples), tokenizer)
    shapes = signature_strings(words) if vocabularies.words.signatures else None
    columns = {
        "words": encode_words(words, vocabularies.words, shapes),
        "tags": [vocabularies.tags.encode(e.tags) for e in examples],
        "intent": [vocabularies.intents.id(e.intent) for e in examples],
    }
    if shapes is not None:
        columns["signatures"] = [vocabularies.words.encode(s) for s in shapes]
    if max_chars:
        columns["chars"] = character_id_rows(words, max_chars)
    return example_batches(columns, batch_size, shuffle_seed=shuffle_seed)


def training_pairs(batch):
    """(inputs, targets, sample weights) for `Model.fit`: padding carries no weight."""
    weights = tf.cast(tf.not_equal(batch["words"], 0), "float32")
    targets = {"slots": batch["tags"], "intent": batch["intent"]}
    sample_weights = {"slots": weights, "intent": tf.ones_like(batch["intent"], "float32")}
    return word_inputs(batch), targets, sample_weights


def drop_words(rate, oov_id, seed=None):
    """A map that replaces each real word by the OOV id with probability `rate` (training only).

    Word dropout: the model learns to tag from context, as it must for words
    it never saw. Where the batch has "signatures", a dropped word becomes its
    signature (its shape) instead, as an unseen word of that shape will be read.
    Its "chars" stay: an unseen word is still read by its letters.
    """

    def apply(batch):
        words = batch["words"]
        dropped = tf.random.uniform(tf.shape(words), seed=seed) < rate
        dropped = tf.logical_and(dropped, tf.not_equal(words, 0))
        replacement = batch.get("signatures", tf.fill(tf.shape(words), tf.cast(oov_id, words.dtype)))
        return {**batch, "words": tf.where(dropped, replacement, words)}

    return apply


def slot_metrics(examples, tags, intents):
    """Slot F1 (conlleval semantics), intent accuracy, sentence accuracy (all slots and intent right)."""
    from seqeval.metrics import f1_score  # imports scikit-learn (1.3 s): not at every start

    gold_tags = [list(e.tags) for e in examples]
    intent_right = [e.intent == intent for e, intent in zip(examples, intents)]
    sentence_right = [ok and list(p) == g for ok, p, g in zip(intent_right, tags, gold_tags)]
    return {
        "slot_f1": float(f1_score(gold_tags, [list(t) for t in tags], zero_division=0)),
        "intent_accuracy": float(np.mean(intent_right)),
        "sentence_accuracy": float(np.mean(sentence_right)),
    }


def intent_report(examples, intents):
    support, correct = Counter(), Counter()
    confused = defaultdict(Counter)
    for example, intent in zip(examples, intents):
        support[example.intent] += 1
        if intent == example.intent:
            correct[example.intent] += 1
        else:
            confused[example.intent][intent] += 1
    lines = [f"{'intent':40s} {'support':>8s} {'accuracy':>9s}  most confused with"]
    for name, count in support.most_common():
        mistakes = ", ".join(f"{other} ({n})" for other, n in confused[name].most_common(3))
        lines.append(f"{name:40s} {count:8d} {correct[name] / count:9.4f}  {mistakes}")
    return "\n".join(lines) + "\n"
