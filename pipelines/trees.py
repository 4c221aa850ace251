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

from nltk import Tree

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
