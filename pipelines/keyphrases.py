"""Keyphrase data (Hulth's Inspec, LIAAD layout), BIO labels, candidate ranking, metrics, TF-IDF.

A data set is a zip holding NAME/docsutf8/ID.txt (a document) and
NAME/keys/ID.key (its gold keyphrases, one a line), as the LIAAD
KeywordExtractor-Datasets collection ships them. Inspec comes with Hulth's
split and, per abstract, where its uncontrolled keyphrases end and its
controlled (thesaurus) terms begin (`HULTH_SPLIT`).

Matching follows the keyphrase literature (pke's benchmarks): a predicted
and a gold keyphrase match when their Porter-stemmed, lower-cased tokens are
the same. P@k = matches in the top k / number predicted (at most k),
R@k = matches / number of gold keyphrases, F@k from those, each averaged over
documents.
"""

import json
import math
import re
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import keras
import numpy as np

from layers.base import PACKAGE
from pipelines.classification import tokenize_texts
from pipelines.sources import DataFormatError, DataNotFoundError, RemoteDataset, locate

INSPEC = RemoteDataset(
    "keyphrase",
    "https://github.com/LIAAD/KeywordExtractor-Datasets/raw/master/datasets",
    {"Inspec.zip": "0868ca0753b69bcea9132def9f2a65c087bca39fc0360d82905e3debb0bf4de2"},
)
# Hulth's split of Inspec, each abstract with the number of controlled terms closing its key
# file (see "about" in the file).
HULTH_SPLIT = Path(__file__).parent / "data" / "inspec_hulth.json"
TAGS = ("B", "I", "O")

# A common English stop list (function words), for the TF-IDF baseline's candidates.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    either few for from further had has have having he her here hers herself him himself
    his how however i if in into is it its itself just may me might more most must my
    myself no nor not now of off on once only or other ought our ours ourselves out over
    own same shall she should so some such than that the their theirs them themselves then
    there these they this those through thus to too under until up upon us very via was we
    were what when where whether which while who whom whose why will with within without
    would yet you your yours yourself yourselves""".split()
)
_WORD = re.compile(r"\w")


@dataclass(frozen=True)
class KeyphraseDocument:
    doc_id: str
    text: str
    keyphrases: tuple  # all of the key file's keyphrases
    split: str = ""  # "train", "valid" or "test" where the data set defines a split (Inspec: Hulth's)
    uncontrolled: tuple = ()  # Inspec: the uncontrolled keyphrases alone (Hulth's references)


@dataclass
class KeyphraseDataset:
    name: str
    documents: list
    skipped: dict = field(default_factory=dict)  # reason -> count


def load_keyphrase_dataset(spec, data_dir=None, progress=True):
    """`inspec` (from the data directory, the cache or a download) or `liaad:PATH.zip`."""
    if spec == "inspec":
        path = locate(INSPEC, ["Inspec.zip"], data_dir=data_dir, progress=progress)["Inspec.zip"]
        return read_liaad_zip(path, hulth_split())
    elif spec.startswith("liaad:"):
        path = Path(spec[len("liaad:") :])
        if not path.is_file():
            raise DataNotFoundError(f"--dataset {spec}: no such file")
    else:
        raise DataNotFoundError(f"--dataset {spec!r}: no such data set; use inspec or liaad:PATH.zip")
    return read_liaad_zip(path)


def hulth_split():
    """{doc_id: (split, controlled terms closing its key file)} for each Inspec abstract: Hulth's split."""
    table = json.loads(HULTH_SPLIT.read_text())
    return {doc_id: (split, count) for split in ("train", "valid", "test") for doc_id, count in table[split].items()}


# The largest entry read from a keyphrase zip: Inspec's abstracts are under 5 KB; a long full-text
# article, a few hundred KB.
MAX_ENTRY_BYTES = 20_000_000


def read_liaad_zip(path, split=None):
    """Documents with their keys; documents without keys are skipped and counted.

    `split` ({doc_id: (split, controlled)}, `hulth_split()`) places the listed documents in that
    split (others in "train") and gives each its uncontrolled keyphrases: the key file's lines
    before the last `controlled`.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as error:
        raise DataFormatError(f"{path}: not a readable zip file ({error})") from None
    with archive:
        names = archive.namelist()
        documents_by_id = {m.group(1): name for name in names if (m := re.search(r"docsutf8/([^/]+)\.txt$", name))}
        keys_by_id = {m.group(1): name for name in names if (m := re.search(r"keys/([^/]+)\.key$", name))}
        if not documents_by_id:
            raise DataFormatError(f"{path}: no NAME/docsutf8/*.txt documents (LIAAD layout expected)")
        documents, skipped = [], Counter()
        for doc_id in sorted(documents_by_id, key=_natural):
            if doc_id not in keys_by_id:
                skipped["no key file"] += 1
                continue
            text = _decode(_read_entry(archive, documents_by_id[doc_id], path), f"{path}:{documents_by_id[doc_id]}")
            keys = _decode(_read_entry(archive, keys_by_id[doc_id], path), f"{path}:{keys_by_id[doc_id]}")
            lines = [k.strip() for k in keys.splitlines() if k.strip()]
            keyphrases = tuple(dict.fromkeys(lines))
            if not keyphrases:
                skipped["key file without keys"] += 1
                continue
            if not text.strip():
                skipped["empty document"] += 1
                continue
            extra = {}
            if split is not None:
                part, controlled = split.get(doc_id, ("train", None))
                extra["split"] = part
                if controlled is not None:
                    if controlled >= len(lines):
                        raise DataFormatError(
                            f"{path}:{keys_by_id[doc_id]}: {len(lines)} keyphrases, but Hulth's split "
                            f"({HULTH_SPLIT.name}) counts {controlled} controlled terms at its end: "
                            "not the copy of Inspec that table was made for (read another copy with "
                            "--dataset liaad:PATH.zip, which splits it at random)"
                        )
                    extra["uncontrolled"] = tuple(dict.fromkeys(lines[:-controlled]))
            documents.append(KeyphraseDocument(doc_id, text, keyphrases, **extra))
    if not documents:
        raise DataFormatError(f"{path}: no document has both text and keys")
    return KeyphraseDataset(Path(path).stem, documents, dict(skipped))


def _read_entry(archive, name, path):
    """An entry's bytes, refused with a message when it is damaged or larger than any document
    should be (a zip bomb is read, decompressed, only up to the size its header declares)."""
    info = archive.getinfo(name)
    if info.file_size > MAX_ENTRY_BYTES:
        raise DataFormatError(
            f"{path}:{name}: {info.file_size:,} bytes once decompressed, above the {MAX_ENTRY_BYTES:,} a "
            f"document or key file may have; the archive is damaged or not a keyphrase data set"
        )
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as error:
        raise DataFormatError(f"{path}:{name}: damaged entry ({type(error).__name__}: {error})") from None


def _decode(data, where):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{where}: not valid UTF-8 at byte {error.start}") from None


def _natural(doc_id):
    return (0, int(doc_id)) if doc_id.isdigit() else (1, doc_id)


def split_documents(documents, seed=0):
    """{"train", "valid", "test"}: the data set's own split where its documents carry one (Inspec:
    Hulth's 1000/500/500), else a seeded shuffle of the documents in id order, cut 50/25/25."""
    if documents and all(d.split for d in documents):
        return {name: [d for d in documents if d.split == name] for name in ("train", "valid", "test")}
    order = np.random.default_rng(seed).permutation(len(documents))
    n_train, n_valid = len(documents) // 2, len(documents) // 4
    parts = {
        "train": order[:n_train],
        "valid": order[n_train : n_train + n_valid],
        "test": order[n_train + n_valid :],
    }
    return {name: [documents[i] for i in sorted(index)] for name, index in parts.items()}


# Stemming, labels, candidates --------------------------------------------------------------


@lru_cache(maxsize=None)
def _stemmer():
    from nltk.stem import PorterStemmer

    return PorterStemmer()


@lru_cache(maxsize=200_000)
def stem(word):
    return _stemmer().stem(word.lower())


def stemmed(tokens):
    return " ".join(stem(t) for t in tokens)


def bio_tags(tokens, keyphrase_tokens):
    """BIO tags marking every occurrence of the keyphrases in `tokens` (stemmed, exact).

    Longer keyphrases win where occurrences overlap. Returns (tags, number of
    keyphrases that occur).
    """
    stems = [stem(t) for t in tokens]
    tags = ["O"] * len(tokens)
    found = 0
    for phrase in sorted({tuple(stem(t) for t in p) for p in keyphrase_tokens if p}, key=len, reverse=True):
        n, hit = len(phrase), False
        for start in range(len(stems) - n + 1):
            if tuple(stems[start : start + n]) == phrase and all(t == "O" for t in tags[start : start + n]):
                tags[start] = "B"
                tags[start + 1 : start + n] = ["I"] * (n - 1)
                hit = True
        found += hit
    return tags, found


def phrase_candidates(tokens, probabilities, max_words=5):
    """Candidate spans from per-token (P(B), P(I), P(O)), one per stemmed form:
    {stemmed form: (phrase, best, total, words, first)}.

    A span's confidence is the probability that the tagger marks exactly it:
    P(B) at its first word, P(I) at each further word, and not P(I) at the
    word after it (tokens taken as independent, as the tagger predicts them).
    Every span of up to `max_words` words without punctuation is a candidate,
    except one that starts or ends inside a hyphenated word ("three-" of
    "three- and four-player", "-based"). `best`: the confidence of the form's
    best occurrence (its phrase is that occurrence's words); `total`: the sum
    over its occurrences; `words`: its length; `first`: where it first occurs,
    as a fraction of the text.
    """
    begin, inside = probabilities[:, 0], probabilities[:, 1]
    candidates = {}
    for start in range(len(tokens)):
        probability = begin[start]
        for end in range(start, min(start + max_words, len(tokens))):
            if not _WORD.search(tokens[end]):
                break
            if end > start:
                probability *= inside[end]
            if tokens[start].startswith("-") or tokens[end].endswith("-"):
                continue  # a piece of a word, not a phrase (longer spans may still close it)
            closed = float(probability * (1.0 - (inside[end + 1] if end + 1 < len(tokens) else 0.0)))
            words = tokens[start : end + 1]
            key = stemmed(words)
            phrase, best, total, _, first = candidates.get(key, ("", -1.0, 0.0, 0, start / len(tokens)))
            if closed > best:
                phrase, best = " ".join(words), closed
            candidates[key] = (phrase, best, total + closed, len(words), first)
    return candidates


RANKING_FEATURES = ("log_best", "log_total", "words", "first", "inside_better", "contains_better")
LINEAR_RANKING_FEATURES = 3  # the ranking of models saved before: linear in the first three
RANKING_POOL = 40  # candidates re-ranked per document: the best by confidence


def ranking_features(candidates):
    """(phrases, stemmed forms, features (n, 6)) of the `RANKING_POOL` most confident candidates
    (`phrase_candidates`), most confident first; features as `RANKING_FEATURES` name them: log
    confidence of the best occurrence, log of its sum over occurrences, words, first occurrence
    (fraction of the text), and whether a more confident candidate contains the phrase, or is
    contained in it (the tagger hesitating over a phrase's extent)."""
    pool = sorted(candidates.items(), key=lambda item: -item[1][1])[:RANKING_POOL]
    spaced = [" " + " ".join(key) + " " for key, _ in pool]
    rows = []
    for i, (_, (_, best, total, words, first)) in enumerate(pool):
        inside_better = any(spaced[i] in other for other in spaced[:i])
        contains_better = any(other in spaced[i] for other in spaced[:i])
        rows.append([math.log(best + 1e-12), math.log(total + 1e-12), words, first, inside_better, contains_better])
    features = np.array(rows, dtype="float64").reshape(-1, len(RANKING_FEATURES))
    return [c[0] for _, c in pool], [key for key, _ in pool], features


def _quadratic(features, mean, scale):
    """Standardized features followed by their pairwise products (i <= j)."""
    z = (features - np.asarray(mean)) / np.asarray(scale)
    i, j = np.triu_indices(z.shape[1])
    return np.concatenate([z, z[:, i] * z[:, j]], axis=1)


def ranking_scores(features, ranking):
    """The ranking's probability that each candidate (a row of `ranking_features`) is a keyphrase.

    `ranking`: `fit_phrase_ranking`'s {"mean", "scale", "weights", "intercept"}, a logistic
    regression over the standardized features and their pairwise products; or, as models saved
    before it, a list of three weights (log best, log total, words) and an intercept."""
    if isinstance(ranking, dict):
        logits = _quadratic(features, ranking["mean"], ranking["scale"]) @ np.asarray(ranking["weights"])
        logits = logits + ranking["intercept"]
    else:
        logits = features[:, :LINEAR_RANKING_FEATURES] @ np.asarray(ranking[:-1]) + ranking[-1]
    return 1.0 / (1.0 + np.exp(-logits))


def ranked_keyphrases(tokens, probabilities, ranking=None, max_words=5):
    """Candidate phrases, best first: [(phrase, score), ...] (see `phrase_candidates`).

    Without `ranking`, by the confidence of each stemmed form's best occurrence.
    With `ranking` (`fit_phrase_ranking`'s), the `RANKING_POOL` most confident are
    re-ranked by its probability that the phrase is a keyphrase, the rest following
    by confidence.
    """
    return _ranked(phrase_candidates(tokens, probabilities, max_words), ranking)


def _ranked(candidates, ranking, pool=None):
    """`ranked_keyphrases` of `phrase_candidates`; `pool`: their `ranking_features`, if computed."""
    ranked = sorted(((phrase, best) for phrase, best, *_ in candidates.values()), key=lambda item: -item[1])
    if ranking is None or not ranked:
        return ranked
    phrases, _, features = pool or ranking_features(candidates)
    scores = ranking_scores(features, ranking)
    order = np.argsort(-scores, kind="stable")
    return [(phrases[i], float(scores[i])) for i in order] + ranked[len(phrases) :]


@keras.saving.register_keras_serializable(package=PACKAGE)
class PhraseRanking(keras.layers.Layer):
    """Passes the tagger's probabilities through, carrying in its config how a saved model ranks
    the candidate phrases: `fit_phrase_ranking`'s result (None: by confidence)."""

    def __init__(self, coefficients=None, **kwargs):
        super().__init__(**kwargs)
        self.coefficients = coefficients

    def call(self, probabilities):
        return probabilities

    def get_config(self):
        return {**super().get_config(), "coefficients": self.coefficients}


def word_statistics_tables(words, documents):
    """(stem group, idf) per id of the vocabulary `words`, for `layers.WordStatistics`.

    Words with the same Porter stem share a group; the special ids (padding,
    OOV) get group 0 (alone). idf = log((N + 1) / (df + 1)) over the N
    `documents` (token lists), df counting the documents that hold the stem;
    the OOV id gets the idf of a stem no document holds.
    """
    stems = [stem(t) for t in words.tokens]
    group_of = {s: i + 1 for i, s in enumerate(dict.fromkeys(stems))}
    df = Counter()
    for document in documents:
        df.update({stem(t) for t in document})
    n = len(documents)
    special_idf = [0.0 if t == "" else math.log(n + 1) for t in words.specials]  # padding, OOV
    groups = np.array([0] * len(words.specials) + [group_of[s] for s in stems], dtype="int32")
    idf = np.array(special_idf + [math.log((n + 1) / (df[s] + 1)) for s in stems], dtype="float32")
    return groups, idf


def prf_at_k(predicted, gold, k):
    """P@k, R@k, F@k of one document: `predicted` ranked phrases, `gold` phrases (token lists or strings)."""
    gold_keys = {stemmed(g.split() if isinstance(g, str) else g) for g in gold}
    top = [stemmed(p.split() if isinstance(p, str) else p) for p in predicted[:k]]
    matches = len(set(top) & gold_keys)
    precision = matches / len(top) if top else 0.0
    recall = matches / len(gold_keys) if gold_keys else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def keyphrase_metrics(rankings, gold_lists, ks=(5, 10)):
    """Macro averages over documents: f1_at_K for each K, and precision/recall at the largest K."""
    metrics = {}
    for k in ks:
        scores = np.array([prf_at_k(r, g, k) for r, g in zip(rankings, gold_lists)])
        metrics[f"f1_at_{k}"] = float(scores[:, 2].mean())
        if k == max(ks):
            metrics[f"precision_at_{k}"] = float(scores[:, 0].mean())
            metrics[f"recall_at_{k}"] = float(scores[:, 1].mean())
    return metrics


# TF-IDF baseline ---------------------------------------------------------------------------


_CANDIDATE_WORD = re.compile(r"[^\W_][\w-]*[^\W_]")  # alphanumeric (hyphens inside), 2+ characters


def ngram_candidates(tokens, max_n=3):
    """Word n-grams (n <= 3) as pke selects them: no stop word, no punctuation, no bare number."""
    candidates = []
    for n in range(1, max_n + 1):
        for start in range(len(tokens) - n + 1):
            words = tokens[start : start + n]
            if any(w in STOPWORDS or not _CANDIDATE_WORD.fullmatch(w) for w in words):
                continue
            if all(w.replace("-", "").isdigit() for w in words):
                continue
            candidates.append(tuple(words))
    return candidates


class TfIdfBaseline:
    """pke-style TF-IDF: a candidate's count in the document times log(N / df) over a corpus."""

    def __init__(self, corpus_tokens):
        self.documents = len(corpus_tokens)
        self.df = Counter()
        for tokens in corpus_tokens:
            self.df.update({stemmed(c) for c in ngram_candidates(tokens)})

    def rank(self, tokens):
        counts = Counter(stemmed(c) for c in ngram_candidates(tokens))
        surface = {}
        for candidate in ngram_candidates(tokens):
            surface.setdefault(stemmed(candidate), " ".join(candidate))
        scores = {key: count * math.log((self.documents + 1) / (self.df[key] + 1)) for key, count in counts.items()}
        return [(surface[key], score) for key, score in sorted(scores.items(), key=lambda item: -item[1])]


def reference_keyphrases(documents, tokenizer):
    """(all gold keyphrases, the uncontrolled ones or None where the documents do not tell them
    apart), each a list per document of tokenized keyphrases."""
    gold = _tokenized_per_document([d.keyphrases for d in documents], tokenizer)
    if not documents or not all(d.uncontrolled for d in documents):
        return gold, None
    return gold, _tokenized_per_document([d.uncontrolled for d in documents], tokenizer)


def _tokenized_per_document(phrase_lists, tokenizer):
    """Each document's phrases tokenized, in one tokenizer call for all (a call per document
    cost a minute on Inspec's 2,000)."""
    tokens = tokenize_texts([phrase for phrases in phrase_lists for phrase in phrases], tokenizer)
    result, start = [], 0
    for phrases in phrase_lists:
        result.append(tokens[start : start + len(phrases)])
        start += len(phrases)
    return result


def score_rankings(rankings, gold, uncontrolled=None):
    """`keyphrase_metrics` of [(phrase, score), ...] rankings against all gold keyphrases and,
    where given, against the uncontrolled ones (`uncontrolled_*`)."""
    phrases = [[phrase for phrase, _ in ranking] for ranking in rankings]
    metrics = keyphrase_metrics(phrases, gold)
    if uncontrolled is not None:
        metrics.update({f"uncontrolled_{k}": v for k, v in keyphrase_metrics(phrases, uncontrolled).items()})
    return metrics
