"""Greedy and beam search against brute-force enumeration of every sequence of a tiny model."""

import itertools

import numpy as np
import pytest

from layers.generation import beam_search, greedy_search, length_penalty

VOCABULARY, START, END = 4, 0, 1  # tokens 0..3; 0 is only ever read (START), 1 ends


def tiny_model(seed, vocabulary=VOCABULARY):
    """A next-token distribution for every prefix: a random table indexed by the prefix's code."""
    rng = np.random.default_rng(seed)
    table = {}

    def distribution(code):
        if code not in table:
            logits = rng.normal(scale=2.0, size=vocabulary)
            logits[START] = -np.inf  # START is never generated
            table[code] = logits - np.logaddexp.reduce(logits[np.isfinite(logits)])
        return table[code]

    def step(tokens, state):
        codes = state["code"] * vocabulary + np.asarray(tokens) + 1
        return np.stack([distribution(int(c)) for c in codes]), {"code": codes}

    def log_prob(sequence):
        """The sequence's log-probability, each token under its own prefix's distribution."""
        code, total = 0, 0.0
        previous = START
        for token in sequence:
            code = code * vocabulary + previous + 1
            total += distribution(code)[token]
            previous = token
        return total

    return step, log_prob


def all_sequences(max_length, vocabulary=VOCABULARY, allowed=None):
    """Every finished sequence: ending at END, or reaching max_length."""
    tokens = [t for t in range(vocabulary) if t != START]
    for length in range(1, max_length + 1):
        for sequence in itertools.product(tokens, repeat=length):
            if END in sequence[:-1] or (length < max_length and sequence[-1] != END):
                continue
            if allowed is None or all(allowed(sequence[:i])[sequence[i]] for i in range(length)):
                yield sequence


def brute_force(log_prob, max_length, alpha, n=1, allowed=None):
    scored = [(log_prob(s) / length_penalty(len(s), alpha), s) for s in all_sequences(max_length, allowed=allowed)]
    return sorted(scored, key=lambda pair: -pair[0])[:n]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_as_wide_as_the_vocabulary_finds_the_best_sequence_of_two(seed, alpha):
    step, log_prob = tiny_model(seed)
    found = beam_search(step, {"code": np.zeros(1, dtype=np.int64)}, 1, START, END, 2, VOCABULARY, alpha)[0][0]
    ((best_score, best),) = brute_force(log_prob, 2, alpha)
    assert found.tokens == best
    assert found.score == pytest.approx(best_score)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_exhaustive_beam_gives_the_brute_force_n_best(seed, alpha):
    step, log_prob = tiny_model(seed)
    width = (VOCABULARY - 1) ** 3  # every prefix of three tokens fits
    state = {"code": np.zeros(2, dtype=np.int64)}  # two identical batch items
    found = beam_search(step, state, 2, START, END, 4, width, alpha, n_best=5)
    expected = brute_force(log_prob, 4, alpha, n=5)
    for item in found:
        assert [h.tokens for h in item] == [s for _, s in expected]
        np.testing.assert_allclose([h.score for h in item], [score for score, _ in expected])


@pytest.mark.parametrize("seed", range(8))
def test_greedy_is_beam_width_one(seed):
    step, _ = tiny_model(seed)
    state = {"code": np.zeros(3, dtype=np.int64)}
    greedy = greedy_search(step, state, 3, START, END, 6)
    beam = beam_search(step, state, 3, START, END, 6, beam_width=1)
    assert [h.tokens for h in greedy] == [b[0].tokens for b in beam]
    np.testing.assert_allclose([h.log_prob for h in greedy], [b[0].log_prob for b in beam])


def test_greedy_takes_the_most_probable_token_each_step():
    step, _ = tiny_model(3)
    (hypothesis,) = greedy_search(step, {"code": np.zeros(1, dtype=np.int64)}, 1, START, END, 5)
    state, token = {"code": np.zeros(1, dtype=np.int64)}, START
    for chosen in hypothesis.tokens:
        log_probs, state = step(np.array([token]), state)
        assert chosen == int(np.argmax(log_probs[0]))
        token = chosen


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("width", [1, 3])
def test_a_constraint_is_never_violated(seed, width):
    step, log_prob = tiny_model(seed)
    rng = np.random.default_rng(100 + seed)
    rules = {}

    def allowed(item, prefix):
        """A random rule per (item, prefix): at least one token, END allowed only sometimes."""
        key = (item, tuple(prefix))
        if key not in rules:
            mask = rng.random(VOCABULARY) < 0.5
            mask[START] = False
            if not mask.any():
                mask[rng.integers(1, VOCABULARY)] = True
            rules[key] = mask
        return rules[key]

    state = {"code": np.zeros(2, dtype=np.int64)}
    found = beam_search(step, state, 2, START, END, 5, width, 0.5, constraint=allowed, n_best=width)
    for item, hypotheses in enumerate(found):
        assert hypotheses
        for hypothesis in hypotheses:
            assert all(allowed(item, hypothesis.tokens[:i])[t] for i, t in enumerate(hypothesis.tokens))
    if width == 3:  # constrained search still finds the constrained best, brute force says
        exhaustive = beam_search(step, state, 2, START, END, 5, 3**4, 0.5, constraint=allowed)
        ((best_score, best),) = brute_force(log_prob, 5, 0.5, allowed=lambda p: allowed(0, p))
        assert exhaustive[0][0].tokens == best
        assert exhaustive[0][0].score == pytest.approx(best_score)


def test_a_constraint_that_allows_nothing_is_an_error():
    step, _ = tiny_model(0)
    with pytest.raises(ValueError, match="allows no token"):
        greedy_search(step, {"code": np.zeros(1, dtype=np.int64)}, 1, START, END, 3,
                      constraint=lambda item, prefix: np.zeros(VOCABULARY, dtype=bool))  # fmt: skip
