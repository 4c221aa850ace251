"""The linear-chain CRF: its likelihood against enumerating every tag sequence, its loss, its training."""

import itertools

import keras
import numpy as np
import pytest

from layers import ConditionalRandomField, ViterbiDecoder

TAGS = 4


def random_crf(rng):
    crf = ConditionalRandomField(TAGS)
    crf.build((None, None, TAGS))
    crf.start_scores.assign(rng.normal(size=(TAGS,)).astype("float32"))
    crf.transition_scores.assign(rng.normal(size=(TAGS, TAGS)).astype("float32"))
    return crf


def path_score(emissions, path, start, transitions):
    """The CRF's score of one tag sequence, from its definition."""
    return (
        start[path[0]]
        + sum(emissions[t, k] for t, k in enumerate(path))
        + sum(transitions[a, b] for a, b in zip(path, path[1:]))
    )


def enumerated_log_likelihood(emissions, path, start, transitions):
    """log p(path): its score minus the log of the summed exp-scores of every sequence of its length."""
    every = itertools.product(range(emissions.shape[-1]), repeat=len(path))
    scores = [path_score(emissions, other, start, transitions) for other in every]
    return path_score(emissions, path, start, transitions) - np.logaddexp.reduce(scores)


@pytest.fixture
def batch():
    rng = np.random.default_rng(3)
    emissions = rng.normal(scale=1.5, size=(5, 5, TAGS)).astype("float32")
    lengths = np.array([5, 3, 1, 4, 2])
    mask = np.arange(5)[None, :] < lengths[:, None]
    tags = rng.integers(0, TAGS, size=(5, 5))
    return rng, emissions, lengths, mask, tags


def test_log_likelihood_matches_enumerating_every_sequence(batch):
    rng, emissions, lengths, mask, tags = batch
    crf = random_crf(rng)
    start, transitions = (keras.ops.convert_to_numpy(w) for w in (crf.start_scores, crf.transition_scores))
    got = keras.ops.convert_to_numpy(crf.log_likelihood(emissions, tags, mask))
    for row, length in enumerate(lengths):
        expected = enumerated_log_likelihood(emissions[row, :length], tags[row, :length], start, transitions)
        assert got[row] == pytest.approx(expected, abs=1e-4), row


def test_probabilities_of_all_sequences_sum_to_one(batch):
    rng, emissions, _, _, _ = batch
    crf = random_crf(rng)
    paths = np.array(list(itertools.product(range(TAGS), repeat=3)))
    repeated = np.repeat(emissions[:1, :3], len(paths), axis=0)
    log_p = keras.ops.convert_to_numpy(crf.log_likelihood(repeated, paths, np.ones((len(paths), 3), bool)))
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-4)


def test_with_zero_scores_it_is_the_per_step_softmax(batch):
    _, emissions, lengths, mask, tags = batch
    crf = ConditionalRandomField(TAGS)
    crf.build((None, None, TAGS))
    got = keras.ops.convert_to_numpy(crf.log_likelihood(emissions, tags, mask))
    log_softmax = emissions - np.log(np.exp(emissions).sum(-1, keepdims=True))
    for row, length in enumerate(lengths):
        assert got[row] == pytest.approx(sum(log_softmax[row, t, tags[row, t]] for t in range(length)), abs=1e-4)


def test_loss_is_the_summed_negative_log_likelihood_over_the_words(batch):
    rng, emissions, lengths, mask, tags = batch
    crf = random_crf(rng)
    targets = np.where(mask, tags + 1, 0)  # tag ids from 1; 0 pads, as in the apps' vocabularies
    crf1 = ConditionalRandomField(TAGS + 1)
    crf1.build((None, None, TAGS + 1))
    padded_emissions = np.concatenate([np.zeros_like(emissions[..., :1]), emissions], axis=-1)
    start = np.concatenate([[0.0], keras.ops.convert_to_numpy(crf.start_scores)]).astype("float32")
    transitions = np.zeros((TAGS + 1, TAGS + 1), "float32")
    transitions[1:, 1:] = keras.ops.convert_to_numpy(crf.transition_scores)
    crf1.start_scores.assign(start)
    crf1.transition_scores.assign(transitions)
    # Keras' weighted mean with the words as sample weights, as the slot-filling app trains.
    loss = crf1.loss(padding_id=0)(targets, padded_emissions, sample_weight=mask.astype("float32"))
    nll = [
        -enumerated_log_likelihood(padded_emissions[r, :n], targets[r, :n], start, transitions)
        for r, n in enumerate(lengths)
    ]
    # Keras divides the weighted sum by the number of targets, padding included, as for a per-word loss.
    assert float(loss) == pytest.approx(sum(nll) / targets.size, rel=1e-4)

    # With zero scores it is exactly Keras' per-word cross-entropy under the same weights.
    crf1.start_scores.assign(np.zeros_like(start))
    crf1.transition_scores.assign(np.zeros_like(transitions))
    loss = crf1.loss(padding_id=0)(targets, padded_emissions, sample_weight=mask.astype("float32"))
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = cross_entropy(targets, padded_emissions, sample_weight=mask.astype("float32"))
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_learned_transitions_tag_what_each_word_alone_cannot():
    """The first word says whether every tag is A or B; the later words are all the same word.

    A per-word softmax can only guess the later tags; a CRF learns that a tag
    follows itself and carries the first word's decision along.
    """
    rng = np.random.default_rng(0)
    first_words = rng.integers(1, 3, size=256)  # word 1 -> tag 1 (A) throughout, word 2 -> tag 2 (B)
    words = np.concatenate([first_words[:, None], np.full((256, 5), 3)], axis=1)
    tags = np.repeat(first_words[:, None], 6, axis=1)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None,), dtype="int32")
    emissions = keras.layers.Dense(3)(keras.layers.Embedding(4, 8, mask_zero=True)(inputs))
    crf = ConditionalRandomField(3, name="crf")
    model = keras.Model(inputs, crf(emissions))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=crf.loss())
    model.fit(words, tags, batch_size=64, epochs=30, verbose=0)

    scores = model.predict(words, verbose=0)
    per_word = scores.argmax(-1)
    assert (per_word[:, 1:] == tags[:, 1:]).mean() < 0.75  # the later words alone: a guess
    allowed = [[True] * 3 for _ in range(3)]
    decoder = ViterbiDecoder(allowed, [True] * 3, learned_scores=True)
    decoder.build(None)
    decoder.copy_scores(crf)
    decoded = keras.ops.convert_to_numpy(decoder(scores, mask=words != 0))
    assert (decoded == tags).all()


def test_decoder_with_learned_scores_finds_the_best_path_and_keeps_them_when_saved(batch, tmp_path):
    rng, emissions, lengths, mask, _ = batch
    crf = random_crf(rng)
    start, transitions = (keras.ops.convert_to_numpy(w) for w in (crf.start_scores, crf.transition_scores))
    allowed = [[True] * TAGS for _ in range(TAGS)]
    allowed[1][2] = False  # a constraint still holds beside the learned scores
    decoder = ViterbiDecoder(allowed, [True] * TAGS, learned_scores=True)
    decoder.build(None)
    decoder.copy_scores(crf)

    scores = keras.Input((None, TAGS))
    model_mask = keras.Input((None,), dtype="bool")
    model = keras.Model([scores, model_mask], decoder(scores, mask=model_mask))
    decoded = model.predict([emissions, mask], verbose=0)
    for row, length in enumerate(lengths):
        candidates = [
            p for p in itertools.product(range(TAGS), repeat=length) if all(allowed[a][b] for a, b in zip(p, p[1:]))
        ]
        best = max(candidates, key=lambda p: path_score(emissions[row, :length], p, start, transitions))
        assert decoded[row, :length].tolist() == list(best), row

    model.save(tmp_path / "decoder.keras")
    reloaded = keras.saving.load_model(tmp_path / "decoder.keras")
    np.testing.assert_array_equal(reloaded.predict([emissions, mask], verbose=0), decoded)


def test_crf_layer_round_trips_through_a_keras_file(tmp_path):
    inputs = keras.Input((None, TAGS))
    crf = ConditionalRandomField(TAGS, transitions_initializer="ones", name="crf")
    model = keras.Model(inputs, crf(inputs))
    model.save(tmp_path / "crf.keras")
    reloaded = keras.saving.load_model(tmp_path / "crf.keras").get_layer("crf")
    assert reloaded.get_config() == crf.get_config()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(reloaded.transition_scores), np.ones((TAGS, TAGS)))
