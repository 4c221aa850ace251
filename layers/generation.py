"""Generation from a trained decoder: greedy and beam search, with an optional constraint.

Kept apart from the training model (as keras-hub keeps its samplers apart from `Seq2SeqLM`):
both searches drive any `step(tokens, state) -> (log_probs, state)` function, where `tokens`
(N,) are the last tokens of N hypotheses, `log_probs` (N, vocabulary) their next-token
log-probabilities and `state` a dict of arrays whose first axis is N (what the decoder carries
from step to step). The searches are NumPy around that function, so they work with whatever
backend computes it.

A `constraint(item, prefix) -> allowed` (booleans over the vocabulary) restricts the next token
of a hypothesis of batch item `item` given its tokens so far: an app guarantees well-formed
output with it (a parser's brackets). A hypothesis ends at `end_id` or at `max_length` tokens.
"""

from dataclasses import dataclass, field

import numpy as np


@dataclass(order=True)
class Hypothesis:
    score: float  # the log-probability divided by the length penalty (what is ranked)
    log_prob: float = field(compare=False)
    tokens: tuple = field(compare=False)  # the generated tokens, `end_id` included when it ended so


def length_penalty(length, alpha):
    """length ** alpha: alpha 0 ranks by log-probability, 1 by log-probability per token."""
    return float(length) ** alpha


def _masked(log_probs, constraint, item_of_row, prefixes):
    if constraint is None:
        return log_probs
    log_probs = log_probs.copy()
    for row, prefix in enumerate(prefixes):
        if prefix is None:
            continue
        allowed = np.asarray(constraint(item_of_row[row], prefix), dtype=bool)
        if not allowed.any():
            raise ValueError(f"the constraint allows no token after {list(prefix)} (batch item {item_of_row[row]})")
        log_probs[row, ~allowed] = -np.inf
    return log_probs


def greedy_search(step, state, batch_size, start_id, end_id, max_length, constraint=None):
    """The most probable next token at every step: one `Hypothesis` per batch item."""
    tokens = np.full(batch_size, start_id, dtype=np.int64)
    prefixes = [() for _ in range(batch_size)]
    log_prob = np.zeros(batch_size)
    done = np.zeros(batch_size, dtype=bool)
    for _ in range(max_length):
        log_probs, state = step(tokens, state)
        log_probs = _masked(np.asarray(log_probs, dtype=np.float64), constraint, range(batch_size),
                            [None if d else p for d, p in zip(done, prefixes)])  # fmt: skip
        best = np.argmax(log_probs, axis=-1)
        for item in np.flatnonzero(~done):
            prefixes[item] += (int(best[item]),)
            log_prob[item] += log_probs[item, best[item]]
            done[item] = best[item] == end_id
        if done.all():
            break
        tokens = best
    return [Hypothesis(log_prob[i], log_prob[i], prefixes[i]) for i in range(batch_size)]


def beam_search(
    step,
    state,
    batch_size,
    start_id,
    end_id,
    max_length,
    beam_width=4,
    alpha=0.0,
    constraint=None,
    n_best=1,
):
    """Beam search: for each batch item its `n_best` hypotheses (`Hypothesis`, best first).

    Each step extends every live hypothesis by every token and keeps the `beam_width`
    best extensions of each batch item by log-probability (all have the same length then);
    those that end (`end_id`, or `max_length` tokens) are finished and frozen, the others
    stay live. Finished hypotheses are ranked by log-probability / length ** `alpha`
    (length normalisation; the length counts `end_id`). An item stops early once none of
    its live hypotheses can still beat its `n_best`-th finished one. Width 1 is greedy search.

    `state` holds the decoder's state for `batch_size` rows; it is repeated `beam_width`
    times (rows item * beam_width + k), and `step` sees N = batch_size * beam_width rows.
    """
    k = beam_width
    rows = batch_size * k
    state = {name: np.repeat(np.asarray(value), k, axis=0) for name, value in state.items()}
    item_of_row = np.repeat(np.arange(batch_size), k)
    # Only the first beam of each item is live at the start: the others would duplicate it.
    live_score = np.full(rows, -np.inf)
    live_score[::k] = 0.0
    prefixes = [() for _ in range(rows)]
    tokens = np.full(rows, start_id, dtype=np.int64)
    finished = [[] for _ in range(batch_size)]
    active = np.ones(batch_size, dtype=bool)
    best_penalty = max(length_penalty(length, alpha) for length in range(1, max_length + 1))

    for length in range(1, max_length + 1):
        log_probs, state = step(tokens, state)
        live = np.isfinite(live_score) & np.repeat(active, k)
        log_probs = _masked(np.asarray(log_probs, dtype=np.float64), constraint, item_of_row,
                            [p if alive else None for p, alive in zip(prefixes, live)])  # fmt: skip
        candidates = np.where(live[:, None], live_score[:, None] + log_probs, -np.inf)
        vocabulary = candidates.shape[1]
        parents = np.arange(rows)
        new_tokens = np.full(rows, end_id, dtype=np.int64)
        new_score = np.full(rows, -np.inf)
        new_prefixes = [()] * rows
        for item in np.flatnonzero(active):
            block = candidates[item * k : (item + 1) * k].reshape(-1)
            order = np.argsort(-block, kind="stable")[:k]
            slot = item * k
            for flat in order:
                score = block[flat]
                if not np.isfinite(score):
                    break
                parent, token = item * k + flat // vocabulary, int(flat % vocabulary)
                prefix = prefixes[parent] + (token,)
                if token == end_id or length == max_length:
                    finished[item].append(Hypothesis(score / length_penalty(length, alpha), score, prefix))
                    continue
                parents[slot], new_tokens[slot], new_score[slot], new_prefixes[slot] = parent, token, score, prefix
                slot += 1
            if not np.isfinite(new_score[item * k : (item + 1) * k]).any():
                active[item] = False
            elif len(finished[item]) >= n_best:
                kth = sorted(finished[item], reverse=True)[n_best - 1].score
                # Log-probabilities only fall as a hypothesis grows: its best normalised future score is bounded.
                if new_score[item * k : (item + 1) * k].max() / best_penalty < kth:
                    active[item] = False
        if not active.any():
            break
        state = {name: value[parents] for name, value in state.items()}
        tokens, live_score, prefixes = new_tokens, new_score, new_prefixes
    return [sorted(hypotheses, reverse=True)[:n_best] for hypotheses in finished]
