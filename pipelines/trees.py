"""Constituency trees for the parsing app: the Penn Treebank sample as NLTK reads it, cleaned as
parsing papers clean it, and written as a sequence the way Vinyals et al. (2015) write trees.

    (S (NP (NNP John)) (VP (VBZ has) (NP (DT a) (NN dog))) (. .))
    -> (S (NP XX )NP (VP XX (NP XX XX )NP )VP XX )S

Cleaning: `-NONE-` elements (traces, empty subjects) go, and so do the constituents they leave
empty; labels lose their function tags and indices (`NP-SBJ-1` -> `NP`, `PP=2` -> `PP`), while
part-of-speech tags that start with a dash (`-LRB-`, `-RRB-`) stay whole. In the sequence every
part-of-speech tag is `XX` and every closing bracket carries its label: n words under k
constituents give n + 2k symbols. `delinearize` puts words (and, if given, tags) back.
"""

import contextlib
import io

import numpy as np
from nltk import Tree

from pipelines.nltk_corpora import nltk_corpus
from pipelines.sources import DataFormatError, DataNotFoundError

TAG_SYMBOL = "XX"
EMPTY_ELEMENT = "-NONE-"


def base_label(label):
    """`NP-SBJ-1` -> `NP`, `PP=2` -> `PP`; `-LRB-`, `-NONE-` unchanged."""
    if label.startswith("-"):
        return label
    for separator in "-=":
        label = label.split(separator, 1)[0]
    return label


def is_preterminal(tree):
    return isinstance(tree, Tree) and len(tree) == 1 and isinstance(tree[0], str)


def clean(tree):
    """A copy of `tree` without empty elements, empty constituents and function tags; None if
    nothing is left."""
    if is_preterminal(tree):
        return None if tree.label() == EMPTY_ELEMENT else Tree(tree.label(), [tree[0]])
    children = [c for c in (clean(child) for child in tree) if c is not None]
    return Tree(base_label(tree.label()), children) if children else None


def linearize(tree):
    """The tree as symbols: `(LABEL`, `XX` per word, `)LABEL`."""
    if is_preterminal(tree):
        return [TAG_SYMBOL]
    symbols = [f"({tree.label()}"]
    for child in tree:
        symbols.extend(linearize(child))
    symbols.append(f"){tree.label()}")
    return symbols


class MalformedTree(ValueError):
    """A symbol sequence that is not a tree over the given words."""


def delinearize(symbols, words, tags=None):
    """The tree `symbols` describe, with `words` (and `tags`, else `XX`) at its `XX` positions.

    Raises `MalformedTree` when a bracket closes with another label than it opened, a bracket
    stays open, a symbol stands outside the one root, or the `XX` do not match the words.
    """
    tags = tags if tags is not None else [TAG_SYMBOL] * len(words)
    stack, root, word = [], None, 0
    for position, symbol in enumerate(symbols):
        if root is not None:
            raise MalformedTree(f"symbol {position} ({symbol}) after the root closed")
        if symbol == TAG_SYMBOL:
            if not stack:
                raise MalformedTree(f"symbol {position}: a word outside any constituent")
            if word >= len(words):
                raise MalformedTree(f"symbol {position}: more XX than the {len(words)} words")
            stack[-1][1].append(Tree(tags[word], [words[word]]))
            word += 1
        elif symbol.startswith("("):
            stack.append((symbol[1:], []))
        elif symbol.startswith(")"):
            if not stack or stack[-1][0] != symbol[1:]:
                opened = stack[-1][0] if stack else "nothing"
                raise MalformedTree(f"symbol {position}: {symbol} closes {opened}")
            label, children = stack.pop()
            if not children:
                raise MalformedTree(f"symbol {position}: an empty constituent {label}")
            subtree = Tree(label, children)
            if stack:
                stack[-1][1].append(subtree)
            else:
                root = subtree
        else:
            raise MalformedTree(f"symbol {position}: unknown symbol {symbol!r}")
    if stack or root is None:
        raise MalformedTree(f"{len(stack)} bracket(s) left open" if stack else "no tree")
    if word != len(words):
        raise MalformedTree(f"{word} XX for {len(words)} words")
    return root


def is_well_formed(symbols, word_count):
    """Whether `symbols` is one tree with exactly `word_count` XX (what constrained decoding keeps)."""
    try:
        delinearize(symbols, [""] * word_count)
    except MalformedTree:
        return False
    return True


# The treebank sample -------------------------------------------------------------------------

# The default split by file, inside wsj_0001-wsj_0189 (the local copy): the last twenty files
# validate and test. NLTK's full sample adds wsj_0190-wsj_0199, which `--test-files` can name.
DEFAULT_FILES = {"train": "wsj_0001-wsj_0169", "valid": "wsj_0170-wsj_0179", "test": "wsj_0180-wsj_0189"}


def file_range(spec, available):
    """The files of `available` (e.g. wsj_0001.mrg) that `spec` names: `wsj_0190-wsj_0199`,
    `wsj_0005`, or a comma-separated list of either; a spec that names none is an error."""
    chosen = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        last = last or first
        names = [f for f in available if first <= f.removesuffix(".mrg") <= last]
        if not names:
            raise DataNotFoundError(
                f"{part.strip()!r}: no treebank file in that range (the data holds "
                f"{available[0].removesuffix('.mrg')}-{available[-1].removesuffix('.mrg')})"
            )
        chosen.extend(n for n in names if n not in chosen)
    return chosen


def read_treebank_file(reader, fileid):
    """The cleaned trees of one file; a tree NLTK cannot read names the file and the tree.

    NLTK "recovers" an unbalanced tree by printing a warning and returning it flat (words straight
    under the root): such a tree is refused here, as one it could not read at all."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            trees = list(reader.parsed_sents(fileid))
        bad = next((i for i, tree in enumerate(trees) if not _well_built(tree)), None)
        if bad is None:
            return [clean(tree) for tree in trees]
        detail = "a word outside a part-of-speech bracket"
    except (ValueError, IndexError) as error:
        detail = str(error)
    raise DataFormatError(f"{fileid}: {_unreadable_tree(reader.raw(fileid))} ({detail})")


def _well_built(tree):
    """Every word sits alone under a part-of-speech tag."""
    if not isinstance(tree, Tree) or not len(tree):
        return False
    if isinstance(tree[0], str):
        return is_preterminal(tree)
    return all(isinstance(child, Tree) and _well_built(child) for child in tree)


def _unreadable_tree(text):
    """Where a .mrg file's text stops being a sequence of bracketed trees: "tree N, line L: why"
    (N counts the trees that begin before that line, plus one)."""
    opens, depth, start = [], 0, None

    def where(position, why):
        line_start = text.rfind("\n", 0, position) + 1
        tree = 1 + sum(o < line_start for o in opens)
        return f"tree {tree}, line {text.count(chr(10), 0, position) + 1}: {why}"

    for position, character in enumerate(text):
        if character == "(":
            if depth == 0:
                start = position
                opens.append(position)
            depth += 1
        elif character == ")":
            depth -= 1
            if depth < 0:
                return where(position, "a ')' closes nothing")
            if depth == 0:
                try:
                    Tree.fromstring(text[start : position + 1])
                except ValueError:
                    return where(start, "not a bracketed tree")
    if depth > 0:
        return where(start, f"{depth} bracket(s) never closed")
    return "a tree NLTK reads as flat (a bracket out of place)"


def load_treebank(data_dir=None, files=None):
    """{split: [cleaned tree]} of NLTK's treebank sample, split by file (`files`: split -> range,
    default `DEFAULT_FILES`)."""
    reader = nltk_corpus("treebank", data_dir)
    available = sorted(reader.fileids())
    # Every range is checked before any file is parsed: a wrong one is said at once, not after
    # reading the training files (seconds).
    names = {split: file_range(spec, available) for split, spec in (DEFAULT_FILES if files is None else files).items()}
    splits = {}
    for split, fileids in names.items():
        trees = [tree for f in fileids for tree in read_treebank_file(reader, f)]
        splits[split] = [tree for tree in trees if tree is not None]
    return splits


def one_line(tree):
    """The tree in Penn's bracketed format on one line (what EVALB reads)."""
    return tree.pformat(margin=10**9)


def right_branching(tagged_words, label="S"):
    """The right-branching baseline over [(word, tag)] (NLTK's `Tree.pos()`): every word opens a
    constituent holding the rest, (S (T1 w1) (S (T2 w2) (S ...))); its brackets are what a parser
    that knows nothing gets."""
    (word, tag), rest = tagged_words[0], tagged_words[1:]
    children = [Tree(tag, [word])]
    if rest:
        children.append(right_branching(rest, label))
    return Tree(label, children)


def max_symbols(word_count):
    """The longest sequence generated for `word_count` words (END included): the sample's trees
    need at most 4n + 1 (short sentences under long unary chains), 2.3n for the longest."""
    return 4 * word_count + 10


class TreeConstraint:
    """Which symbols may come next so that a prefix still ends as one tree with exactly one `XX` per
    word within a length budget: what makes constrained decoding's output always well formed.

        ( L   only inside the root or as the root, while a word is left for it, and within budget
        XX    only inside a constituent, while words are left
        ) L   only the innermost open bracket's label, once it holds something; the root's only
              after the last word
        END   only after the root closed

    `symbols` are the output vocabulary's tokens by id (specials included), `end_id` the END id.
    `allowed(prefix, word_count, max_length)` gives booleans over the ids; every prefix it allows
    can still be completed (length + words left + open brackets + END never exceeds the budget).
    """

    def __init__(self, symbols, end_id):
        self.size = len(symbols)
        self.end_id = end_id
        self.xx_id = symbols.index(TAG_SYMBOL)
        self.opens = {i: s[1:] for i, s in enumerate(symbols) if s.startswith("(") and len(s) > 1}
        self.closes = {s[1:]: i for i, s in enumerate(symbols) if s.startswith(")") and len(s) > 1}
        self.closing = {i for i in self.closes.values()}
        self.open_ids = sorted(i for i, label in self.opens.items() if label in self.closes)

    def allowed(self, prefix, word_count, max_length):
        stack, words, root_closed = [], 0, False  # stack: [label, holds something]
        for symbol in prefix:
            if symbol == self.xx_id:
                words += 1
                stack[-1][1] = True
            elif symbol in self.opens:
                stack.append([self.opens[symbol], False])
            elif symbol in self.closing:
                stack.pop()
                if stack:
                    stack[-1][1] = True
                else:
                    root_closed = True
        mask = np.zeros(self.size, dtype=bool)
        if root_closed:
            mask[self.end_id] = True
            return mask
        left = word_count - words
        if left > 0 and (stack or not prefix):
            if len(prefix) + 1 + left + len(stack) + 1 + 1 <= max_length:
                mask[self.open_ids] = True
            if stack:
                mask[self.xx_id] = True
        if stack and stack[-1][1] and (len(stack) > 1 or left == 0):
            mask[self.closes[stack[-1][0]]] = True
        return mask
