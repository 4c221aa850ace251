"""Labelled bracket scores with EVALB's semantics (Sekine & Collins' evalb.c), so that the parsing
app reports what parsing papers report, without a C program at run time.

What EVALB does, and this module with it: a preterminal whose tag is a deleted label (COLLINS.prm:
punctuation, -NONE-, TOP) takes its word out of the sentence; a constituent left spanning no word,
or whose label (cut at its first '-' or '=') is deleted, is not scored; each gold bracket matches
at most one test bracket of the same span and an equivalent label (ADVP = PRT); a sentence whose
words differ from the gold ones is an error, an empty test line a skip, and neither is scored;
a sentence's length for the `len<=40` summary counts every word but -NONE-.
`tests/test_parse_metrics.py` checks it against the real EVALB.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EvalbParameters:
    delete_labels: frozenset = frozenset()
    delete_for_length: frozenset = frozenset()
    equal_labels: tuple = ()  # pairs
    equal_words: tuple = ()
    cutoff: int = 40
    labelled: bool = True

    @classmethod
    def read(cls, path):
        """The parameters of an EVALB .prm file."""
        values = {"delete_labels": set(), "delete_for_length": set(), "equal_labels": [], "equal_words": []}
        cutoff, labelled = 40, True
        for line in open(path, encoding="utf-8"):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            name, rest = parts[0], parts[1:]
            if name == "DELETE_LABEL":
                values["delete_labels"].add(rest[0])
            elif name == "DELETE_LABEL_FOR_LENGTH":
                values["delete_for_length"].add(rest[0])
            elif name == "EQ_LABEL":
                values["equal_labels"].append((rest[0], rest[1]))
            elif name == "EQ_WORD":
                values["equal_words"].append((rest[0], rest[1]))
            elif name == "CUTOFF_LEN":
                cutoff = int(rest[0])
            elif name == "LABELED":
                labelled = rest[0] != "0"
        return cls(
            frozenset(values["delete_labels"]), frozenset(values["delete_for_length"]),
            tuple(values["equal_labels"]), tuple(values["equal_words"]), cutoff, labelled,
        )  # fmt: skip


# COLLINS.prm, the parameters parsing papers report with.
COLLINS = EvalbParameters(
    delete_labels=frozenset({"TOP", "-NONE-", ",", ":", "``", "''", "."}),
    delete_for_length=frozenset({"-NONE-"}),
    equal_labels=(("ADVP", "PRT"),),
)


class BracketError(ValueError):
    """A line EVALB cannot read as a bracketed tree."""


def _equal(a, b, pairs):
    return a == b or (a, b) in pairs or (b, a) in pairs


def _terminator(character):
    return character.isspace() or character in "()"


def read_bracketed(line, parameters=COLLINS):
    """(terminals [(tag, word)], brackets [[label, start, end]], length) as evalb.c's read_line."""
    terminals, brackets, stack, length, i, n = [], [], [], 0, 0, len(line)
    while i < n:
        character = line[i]
        if character.isspace():
            i += 1
        elif character == "(":
            j = i + 1
            while j < n and not _terminator(line[j]):
                j += 1
            label, i = line[i + 1 : j], j
            if i < n and line[i].isspace():
                q = i
                while q < n and line[q].isspace():
                    q += 1
                k = q
                while k < n and not _terminator(line[k]):
                    k += 1
                if k < n and line[k] == ")":  # a preterminal: (TAG word)
                    if label not in parameters.delete_for_length:
                        length += 1
                    if label not in parameters.delete_labels:
                        terminals.append((label, line[q:k]))
                    i = k + 1
                    continue
                if k >= n or line[k] != "(":
                    raise BracketError("more than two elements in a bracket")
            brackets.append([label, len(terminals), None])
            stack.append(len(brackets) - 1)
        elif character == ")":
            if not stack:
                raise BracketError("bracketing is unbalanced (too many close brackets)")
            brackets[stack.pop()][2] = len(terminals)
            i += 1
        else:
            raise BracketError("reading sentence")
    if stack:
        raise BracketError("bracketing is unbalanced (too many open brackets)")
    return terminals, brackets, length


def _scored(brackets, parameters):
    """The brackets EVALB scores: not empty, label cut at '-' or '=', not a deleted label."""
    kept = []
    for label, start, end in brackets:
        if start == end:
            continue
        for separator in "-=":
            label = label.split(separator, 1)[0] if separator in label else label
        if any(_equal(label, deleted, parameters.equal_labels) for deleted in parameters.delete_labels):
            continue
        kept.append((label, start, end))
    return kept


def _matches(gold, test, parameters):
    """The gold brackets matched one-to-one by a test bracket (same span and, if labelled, label)."""
    used, matched = [False] * len(test), []
    for label, start, end in gold:
        for j, (test_label, test_start, test_end) in enumerate(test):
            if not used[j] and (start, end) == (test_start, test_end):
                if not parameters.labelled or _equal(label, test_label, parameters.equal_labels):
                    used[j] = True
                    matched.append((label, start, end))
                    break
    return matched


@dataclass
class SentenceScore:
    status: int  # 0 scored, 1 error, 2 skipped (as EVALB)
    length: int  # gold words but -NONE- (for the cutoff)
    gold: int = 0
    test: int = 0
    match: int = 0
    crossing: int = 0
    words: int = 0
    correct_tags: int = 0
    error: str = ""


def score_sentence(gold_line, test_line, parameters=COLLINS):
    """One sentence as EVALB scores it."""
    try:
        gold_terminals, gold_brackets, length = read_bracketed(gold_line, parameters)
    except BracketError as error:
        return SentenceScore(1, 0, error=f"gold: {error}")
    try:
        test_terminals, test_brackets, _ = read_bracketed(test_line, parameters)
    except BracketError as error:
        return SentenceScore(1, length, error=f"test: {error}")
    if not test_terminals:
        return SentenceScore(2, length)
    if len(gold_terminals) != len(test_terminals):
        return SentenceScore(1, length, error=f"length unmatch ({len(gold_terminals)}|{len(test_terminals)})")
    for (_, gold_word), (_, test_word) in zip(gold_terminals, test_terminals):
        if not _equal(gold_word, test_word, parameters.equal_words):
            return SentenceScore(1, length, error=f"words unmatch ({gold_word}|{test_word})")
    gold, test = _scored(gold_brackets, parameters), _scored(test_brackets, parameters)
    match = len(_matches(gold, test, parameters))
    crossing = sum(any((gs < ts < ge < te) or (ts < gs < te < ge) for _, gs, ge in gold) for _, ts, te in test)
    correct = sum(_equal(g, t, parameters.equal_labels) for (g, _), (t, _) in zip(gold_terminals, test_terminals))
    return SentenceScore(0, length, len(gold), len(test), match, crossing, len(gold_terminals), correct)


@dataclass
class Totals:
    sentences: int = 0
    errors: int = 0
    skipped: int = 0
    gold: int = 0
    test: int = 0
    match: int = 0
    complete: int = 0
    words: int = 0
    correct_tags: int = 0
    crossing: int = 0
    error_messages: list = field(default_factory=list)

    def add(self, score):
        self.sentences += 1
        if score.status == 1:
            self.errors += 1
            return
        if score.status == 2:
            self.skipped += 1
            return
        self.gold += score.gold
        self.test += score.test
        self.match += score.match
        self.complete += score.gold == score.test == score.match
        self.words += score.words
        self.correct_tags += score.correct_tags
        self.crossing += score.crossing

    def summary(self):
        valid = self.sentences - self.errors - self.skipped
        recall = 100.0 * self.match / self.gold if self.gold else 0.0
        precision = 100.0 * self.match / self.test if self.test else 0.0
        return {
            "sentences": self.sentences, "errors": self.errors, "skipped": self.skipped, "valid": valid,
            "recall": recall, "precision": precision,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "complete_match": 100.0 * self.complete / valid if valid else 0.0,
            "tagging_accuracy": 100.0 * self.correct_tags / self.words if self.words else 0.0,
        }  # fmt: skip


def evalb(gold_lines, test_lines, parameters=COLLINS):
    """{"all": summary, f"len<={cutoff}": summary} of paired lines (one tree a line), as EVALB's."""
    everything, short = Totals(), Totals()
    for gold_line, test_line in zip(gold_lines, test_lines, strict=True):
        score = score_sentence(gold_line, test_line, parameters)
        everything.add(score)
        if score.length <= parameters.cutoff:
            short.add(score)
    return {"all": everything.summary(), f"len<={parameters.cutoff}": short.summary()}


def label_scores(gold_lines, test_lines, parameters=COLLINS):
    """{label: {"gold", "test", "match", "recall", "precision", "f1"}} over the sentences EVALB
    scores (those it would count as errors or skips are left out), most frequent gold label first."""
    counts = {}

    def count(label, key):
        counts.setdefault(label, {"gold": 0, "test": 0, "match": 0})[key] += 1

    for gold_line, test_line in zip(gold_lines, test_lines, strict=True):
        if score_sentence(gold_line, test_line, parameters).status != 0:
            continue
        gold = _scored(read_bracketed(gold_line, parameters)[1], parameters)
        test = _scored(read_bracketed(test_line, parameters)[1], parameters)
        for label, _, _ in gold:
            count(label, "gold")
        for label, _, _ in test:
            count(label, "test")
        for label, _, _ in _matches(gold, test, parameters):
            count(label, "match")
    for row in counts.values():
        row["recall"] = 100.0 * row["match"] / row["gold"] if row["gold"] else 0.0
        row["precision"] = 100.0 * row["match"] / row["test"] if row["test"] else 0.0
        total = row["recall"] + row["precision"]
        row["f1"] = 2 * row["recall"] * row["precision"] / total if total else 0.0
    return dict(sorted(counts.items(), key=lambda item: (-item[1]["gold"], item[0])))
