"""The keywords app's data: documents, their tokens and reference keyphrases, and the batches
the tagger reads (B/I/O tags, word statistics' keys, characters)."""

from dataclasses import dataclass, field
from functools import cached_property

from pipelines.keyphrases import TfIdfBaseline, bio_tags, word_statistics_tables
from pipelines.text import SentenceTokenizer, character_id_rows, example_batches, token_key_rows
from pipelines.vocab import Vocabulary


@dataclass
class KeyphraseData:
    splits: dict  # split -> [KeyphraseDocument]
    tokens: dict  # split -> [[token, ...] per document]
    gold: dict  # split -> [[keyphrase tokens, ...] per document]
    uncontrolled: dict  # split -> the same of the uncontrolled keyphrases (Inspec), or None
    tokenizer: SentenceTokenizer
    words: Vocabulary
    tags: Vocabulary
    tfidf: TfIdfBaseline
    batch_size: int
    seed: int
    skipped: dict = field(default_factory=dict)
    keys: str = "all"  # --keys: which references the tagger learns and the ranking is fitted to
    max_chars: int = 0  # with --char-features: the characters read per word
    token_keys: bool = False  # with --word-statistics: each word's hash, which groups unseen words
    fitted_ranking: bool = True  # --ranking fitted (the fitted ranking itself is the model's: `ranking_of`)

    @property
    def labels(self):
        """split -> the references the tagger learns and the ranking is fitted to (--keys)."""
        return self.gold if self.keys == "all" else self.uncontrolled

    def has_split(self, split):
        return bool(self.splits.get(split))

    @cached_property
    def statistics_tables(self):
        """(stem group, idf) per word id, from the training documents (`layers.WordStatistics`)."""
        return word_statistics_tables(self.words, self.tokens["train"])

    def batches(self, split, shuffle=False, labelled_only=False):
        """Batches of {"index", "words", "tags"} (and "keys" with --word-statistics, "chars" with
        --char-features); `labelled_only` leaves out documents in which no gold keyphrase occurs
        (nothing to learn from)."""
        columns = {"words": [], "tags": []}
        kept = []
        for tokens, gold in zip(self.tokens[split], self.labels[split]):
            tags, found = bio_tags(tokens, gold)
            if labelled_only and not found:
                continue
            kept.append(tokens)
            columns["words"].append(self.words.encode(tokens))
            columns["tags"].append(self.tags.encode(tags))
        if self.token_keys:
            columns["keys"] = token_key_rows(kept)
        if self.max_chars:
            columns["chars"] = character_id_rows(kept, self.max_chars)
        return example_batches(columns, self.batch_size, shuffle_seed=self.seed if shuffle else None)
