"""Audio pipeline, connected digits, CTC loss and decoding, against librosa, TF and hand cases."""

import dataclasses
import hashlib
import json
import math
from collections import Counter
from pathlib import Path

import keras
import librosa
import numpy as np
import pytest
import soundfile
import tensorflow as tf

from apps.speech_ctc_data import ctc_frames_needed, speech_metrics
from layers.ctc import CTCLoss, beam_decode, edit_distance, greedy_decode, pack_targets
from pipelines.audio import (
    mask_spectrogram,
    TAKE_SPLITS,
    AudioError,
    FeatureCache,
    FeatureConfig,
    build_utterances,
    change_speed,
    features,
    file_features,
    fsdd_recordings,
    load_audio,
    synthesize,
    Recording,
    Utterance,
)
from tests.support import SHARED_DATA

RECORDING = SHARED_DATA / "fsdd" / "recordings" / "3_theo_7.wav"


@pytest.fixture(scope="module")
def recordings():
    return fsdd_recordings(SHARED_DATA, progress=False)


def test_fsdd_has_2500_recordings_of_5_speakers(recordings):
    assert len(recordings) == 2500
    assert Counter(r.speaker for r in recordings) == {s: 500 for s in ("george", "jackson", "lucas", "nicolas", "theo")}
    assert {r.digit for r in recordings} == set(range(10)) and {r.take for r in recordings} == set(range(50))


def test_features_have_librosa_shapes_and_are_normalized():
    samples = load_audio(RECORDING)
    config = FeatureConfig()
    values = features(samples, config)
    # librosa centres frames: 1 + len // hop of them; 40 log-mel bands with deltas and delta-deltas.
    expected_frames = librosa.feature.melspectrogram(
        y=samples, sr=8000, n_fft=256, win_length=200, hop_length=80, n_mels=40
    ).shape[1]
    assert values.shape == (expected_frames, 120) == (config.frames(len(samples)), config.dims)
    np.testing.assert_allclose(values.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(values.std(axis=0), 1.0, atol=1e-2)
    mfcc = features(samples, FeatureConfig(kind="mfcc", deltas=False))
    assert mfcc.shape == (expected_frames, 13)


def test_any_rate_and_channel_count_is_resampled_to_8khz_mono(tmp_path):
    original = load_audio(RECORDING)
    at_16k = librosa.resample(original, orig_sr=8000, target_sr=16000)
    stereo = tmp_path / "stereo16k.wav"
    soundfile.write(stereo, np.stack([at_16k, 0.5 * at_16k], axis=1), 16000)
    loaded = load_audio(stereo)
    assert abs(len(loaded) - len(original)) <= 1
    n = min(len(loaded), len(original))
    assert np.corrcoef(loaded[:n], 0.75 * original[:n])[0, 1] > 0.99  # the mean of the two channels


@pytest.mark.parametrize(
    "content, message",
    [(None, "no such audio file"), (b"", "empty file"), (b"RIFF\x00\x00not really a wave", "not readable as audio"),
     (b"just some text, not audio at all\n" * 40, "not readable as audio")],
    ids=["missing", "empty", "corrupt", "not-audio"],
)  # fmt: skip
def test_unusable_audio_is_an_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=rf"bad.wav: {message}"):
        load_audio(path)


def test_connected_digits_are_seeded_one_speaker_1_to_7_digits(recordings):
    train = [r for r in recordings if r.take in TAKE_SPLITS["train"]]
    utterances = build_utterances(train, 300, seed=5)
    assert utterances == build_utterances(train, 300, seed=5)
    assert utterances != build_utterances(train, 300, seed=6)
    assert Counter(len(u.digits) for u in utterances).keys() == set(range(1, 8))
    assert all(len({r.speaker for r in u.recordings}) == 1 for u in utterances)
    assert all(r.take >= 10 for u in utterances for r in u.recordings)
    assert any(a == b for u in utterances for a, b in zip(u.digits, u.digits[1:]))  # repeats occur
    assert all(len(u.gaps) == len(u.recordings) + 1 and all(400 <= g <= 2400 for g in u.gaps) for u in utterances)
    utterance = utterances[0]
    samples = synthesize(utterance, load_audio)
    assert len(samples) == sum(utterance.gaps) + sum(len(load_audio(r.path)) for r in utterance.recordings)


def test_speed_perturbation_keeps_the_utterances_and_draws_speeds_in_range(recordings):
    train = [r for r in recordings if r.take in TAKE_SPLITS["train"]]
    plain = build_utterances(train, 200, seed=5)
    perturbed = build_utterances(train, 200, seed=5, speed_range=0.1)
    assert perturbed == build_utterances(train, 200, seed=5, speed_range=0.1)
    assert [(u.recordings, u.gaps) for u in perturbed] == [(u.recordings, u.gaps) for u in plain]
    assert all(u.speeds == () for u in plain)
    speeds = [s for u in perturbed for s in u.speeds]
    assert len(speeds) == sum(len(u.recordings) for u in perturbed)
    assert min(speeds) >= 0.9 and max(speeds) <= 1.1 and len(set(speeds)) > 15
    assert all(abs(s * 100 - round(s * 100)) < 1e-9 for s in speeds)  # 0.01 steps
    with pytest.raises(ValueError, match="speed range must be in"):
        build_utterances(train, 2, seed=5, speed_range=1.0)
    # Synthesized at their speeds: each recording lasts len / speed samples.
    utterance = perturbed[0]
    lengths = [len(load_audio(r.path)) / s for r, s in zip(utterance.recordings, utterance.speeds)]
    assert abs(len(synthesize(utterance, load_audio)) - sum(utterance.gaps) - sum(lengths)) <= len(lengths)


@pytest.mark.parametrize("speed", [0.9, 0.95, 1.1])
def test_changing_speed_scales_duration_and_pitch_together(speed):
    """A 1 kHz tone played `speed` times as fast is a (1000 * speed) Hz tone, 1 / speed as long."""
    seconds, rate = 0.5, 8000
    tone = np.sin(2 * np.pi * 1000 * np.arange(int(seconds * rate)) / rate).astype("float32")
    faster = change_speed(tone, speed, rate)
    assert abs(len(faster) - len(tone) / speed) <= 1
    spectrum = np.abs(np.fft.rfft(faster * np.hanning(len(faster))))
    peak_hz = np.argmax(spectrum) * rate / len(faster)
    assert peak_hz == pytest.approx(1000 * speed, abs=rate / len(faster))
    assert change_speed(tone, 1.0, rate) is tone


def test_feature_cache_keys_on_the_speeds(recordings):
    plain = build_utterances(recordings[:40], 4, seed=0)
    perturbed = build_utterances(recordings[:40], 4, seed=0, speed_range=0.1)
    cache = FeatureCache("unused")
    assert cache.key(plain, FeatureConfig()) != cache.key(perturbed, FeatureConfig())
    # Sets without speeds keep the key of the recipe before speeds existed, so cached features stay valid.
    recipe = {
        "config": dataclasses.asdict(FeatureConfig()),
        "utterances": [[[Path(r.path).name for r in u.recordings], list(u.gaps)] for u in plain],
    }
    assert cache.key(plain, FeatureConfig()) == hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:20]


def test_a_file_to_recognize_is_read_as_a_one_recording_training_utterance():
    """Training utterances put 50-300 ms of silence around each recording; a file gets the middle, 175 ms.

    Read without it, FSDD's tightly cut test recordings were misheard 3 times as often by a trained
    model (docs/results/speech_ctc.md).
    """
    utterance = Utterance((Recording(str(RECORDING), 3, "theo", 7),), (1400, 1400))
    expected = features(synthesize(utterance, load_audio), FeatureConfig())
    np.testing.assert_array_equal(file_features(RECORDING, FeatureConfig()), expected)
    assert len(expected) > len(features(load_audio(RECORDING), FeatureConfig())) + 30


def test_splits_by_take_do_not_share_recordings():
    for take in range(500):  # FSDD's 50 takes a speaker, and a user's folder with more
        assert sum(take in takes for takes in TAKE_SPLITS.values()) == 1
    assert list(TAKE_SPLITS["test"]) == [0, 1, 2, 3, 4] and list(TAKE_SPLITS["valid"]) == [5, 6, 7, 8, 9]


def test_feature_cache_computes_once_and_counts_bad_recordings(tmp_path, recordings):
    utterances = build_utterances(recordings[:40], 6, seed=0)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....garbage")
    bad = type(utterances[0].recordings[0])(str(broken), 1, "x", 0)
    utterances.append(type(utterances[0])((bad,), (800, 800)))
    cache = FeatureCache(tmp_path / "cache")
    values, errors = cache.load(utterances, FeatureConfig(), progress=False)
    assert values[-1] is None and len(errors) == 1 and "broken.wav" in errors[0]
    again, errors_again = cache.load(utterances, FeatureConfig(), progress=False)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    for first, second in zip(values[:-1], again[:-1]):
        np.testing.assert_array_equal(first, second)
    assert again[-1] is None and errors_again == errors


def test_frames_ctc_needs_count_a_blank_between_repeats():
    assert ctc_frames_needed((1, 1, 2)) == 4
    assert ctc_frames_needed((3,)) == 1
    assert ctc_frames_needed((5, 5, 5)) == 5


# CTC --------------------------------------------------------------------------------------


def test_ctc_loss_of_the_hand_case():
    """Two frames, uniform over 11 classes, label "1": paths 1 1, 1 -, - 1 reduce to it."""
    logits = np.zeros((1, 2, 11), dtype="float32")
    y_true = pack_targets(np.array([2]), np.array([[1]]), np.array([1]))
    assert float(CTCLoss()(y_true, logits)) == pytest.approx(-math.log(3 / 121), rel=1e-5)


def test_ctc_loss_uses_each_examples_own_lengths_like_tf_nn_ctc_loss():
    rng = np.random.default_rng(0)
    frames = np.array([9, 5, 7])
    labels = [[1, 1, 3], [4], [2, 5]]  # a repeat; lengths 3, 1, 2
    logits = rng.normal(size=(3, 12, 11)).astype("float32")  # padded to 12 frames
    padded = np.zeros((3, 4), dtype="int32")
    for i, label in enumerate(labels):
        padded[i, : len(label)] = label
    y_true = pack_targets(frames, padded, np.array([len(x) for x in labels]))
    ours = keras.ops.convert_to_numpy(CTCLoss(reduction=None)(y_true, logits))
    for i, label in enumerate(labels):
        reference = tf.nn.ctc_loss(
            labels=tf.constant([label]), logits=tf.constant(logits[i : i + 1, : frames[i]]),
            label_length=[len(label)], logit_length=[frames[i]], logits_time_major=False, blank_index=0,
        )  # fmt: skip
        assert ours[i] == pytest.approx(float(reference[0]), rel=1e-5)
    # keras.losses.CTC counts every example's padded length: a different, wrong value.
    padded_loss = keras.losses.CTC(reduction=None)(padded, logits)
    assert not np.allclose(keras.ops.convert_to_numpy(padded_loss), ours)


def posteriorgram(path, classes=11):
    """One-hot-ish frames: 0.9 on the given class per frame."""
    scores = np.full((len(path), classes), 0.01, dtype="float32")
    scores[np.arange(len(path)), path] = 0.9
    return np.log(scores)


def test_greedy_and_beam_decoding_merge_repeats_and_drop_blanks():
    path = [1, 1, 0, 1, 2, 2, 0, 0, 3]  # "1" "1" (blank between) "2" "3"
    scores = posteriorgram(path)
    assert greedy_decode(scores, len(path)) == [1, 1, 2, 3]
    assert greedy_decode(scores, 5) == [1, 1, 2]  # frames past the length are ignored
    padded = np.stack([scores, np.concatenate([scores[:4], np.log(np.full((5, 11), 1 / 11))])])
    assert beam_decode(padded, np.array([9, 4]), beam_width=8) == [[1, 1, 2, 3], [1, 1]]


def test_beam_search_finds_what_the_best_path_misses():
    """Per frame blank 0.6, "1" 0.4: the best path is blank-blank (0.36), but "1" has 0.64."""
    probabilities = np.zeros((1, 2, 11), dtype="float32") + 1e-6
    probabilities[0, :, 0], probabilities[0, :, 1] = 0.6, 0.4
    logits = np.log(probabilities)
    assert greedy_decode(logits[0], 2) == []
    assert beam_decode(logits, np.array([2]), beam_width=4) == [[1]]


def test_edit_distance_and_digit_error_rate_by_hand():
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance([1, 2, 3], [3, 2, 1]) == 2
    assert edit_distance([], [4, 4]) == 2
    metrics = speech_metrics([(1, 2, 3), (4, 4)], [[1, 3], [4, 4]])
    assert metrics == {"digit_error_rate": 1 / 5, "sequence_accuracy": 0.5}


def test_spectrogram_masking_hides_band_ranges_and_spans_inside_each_utterance():
    tf.random.set_seed(5)
    bands, blocks, steps = 10, 3, 30
    features = tf.ones((6, steps, bands * blocks))
    frames = tf.constant([30, 20, 12, 5, 1, 30])
    assert mask_spectrogram(features, frames, bands) is features  # no masks asked: untouched
    hidden_any = False
    for _ in range(5):
        masked = mask_spectrogram(
            features, frames, bands, freq_masks=1, freq_width=4, time_masks=1, time_width=6
        ).numpy()
        for example, length in enumerate(frames.numpy()):
            zero = masked[example] == 0
            # A hidden band is hidden in all three blocks and at every frame.
            hidden_bands = np.where(zero.reshape(steps, blocks, bands).all(axis=(0, 1)))[0]
            assert len(hidden_bands) <= 4
            if len(hidden_bands):
                assert np.all(np.diff(hidden_bands) == 1)  # one contiguous range
            visible = np.setdiff1d(np.arange(bands), hidden_bands)
            # A hidden span: whole frames (every visible band), contiguous, inside the utterance.
            hidden_frames = np.where(zero.reshape(steps, blocks, bands)[:, :, visible].all(axis=(1, 2)))[0]
            assert len(hidden_frames) <= 6 and np.all(hidden_frames < length)
            if len(hidden_frames):
                assert np.all(np.diff(hidden_frames) == 1)
            # Nothing else is hidden.
            expected = np.zeros((steps, blocks, bands), dtype=bool)
            expected[:, :, hidden_bands] = True
            expected[hidden_frames] = True
            np.testing.assert_array_equal(zero.reshape(steps, blocks, bands), expected)
            hidden_any |= bool(len(hidden_bands) and len(hidden_frames))
    assert hidden_any  # 30 draws of widths 0..4 and 0..6: some hide both


def _fsdd_copy(root, recordings):
    """A data folder holding fsdd/recordings/ as links to the shared copy's files."""
    folder = root / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    for recording in recordings:
        (folder / Path(recording.path).name).symlink_to(recording.path)
    return folder


def test_every_fsdd_named_recording_beside_the_manifests_is_read(tmp_path, recordings):
    import shutil

    folder = _fsdd_copy(tmp_path, recordings)
    shutil.copy(recordings[0].path, folder / "3_newspeaker_0.wav")  # a newer FSDD's speaker
    shutil.copy(recordings[1].path, folder / "4_newspeaker_57.wav")  # a take FSDD does not have
    (folder / "notes.txt").write_text("not a recording")
    found = fsdd_recordings(tmp_path, progress=False)
    assert len(found) == 2502
    new = sorted((r.digit, r.speaker, r.take) for r in found if r.speaker == "newspeaker")
    assert new == [(3, "newspeaker", 0), (4, "newspeaker", 57)]
    assert 57 in TAKE_SPLITS["train"]


def test_a_manifest_recording_with_other_content_is_refused(tmp_path, recordings):
    from pipelines.sources import ChecksumError

    folder = _fsdd_copy(tmp_path, recordings)
    victim = folder / Path(recordings[5].path).name
    victim.unlink()
    victim.write_bytes(Path(recordings[6].path).read_bytes())
    with pytest.raises(ChecksumError, match=f"{victim.name}: not the FSDD recording its name says"):
        fsdd_recordings(tmp_path, progress=False)


def test_a_users_folder_of_recordings_is_read_by_fsdds_naming(tmp_path, recordings, capsys):
    from pipelines.audio import load_recordings
    from pipelines.sources import DataFormatError, DataNotFoundError

    (tmp_path / "session2").mkdir()
    for index, recording in enumerate(recordings[:6]):
        target = tmp_path / ("session2" if index % 2 else ".") / f"{recording.digit}_Alice-2_{index}.wav"
        target.write_bytes(Path(recording.path).read_bytes())
    (tmp_path / "readme.md").write_text("my digits")
    found = load_recordings(f"folder:{tmp_path}")
    assert sorted(r.take for r in found) == list(range(6)) and {r.speaker for r in found} == {"Alice-2"}
    assert "1 files not named DIGIT_SPEAKER_TAKE.wav" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataFormatError, match="no recordings named DIGIT_SPEAKER_TAKE.wav"):
        load_recordings(f"folder:{empty}")
    with pytest.raises(DataNotFoundError, match="no such folder"):
        load_recordings(f"folder:{tmp_path / 'nowhere'}")
    with pytest.raises(DataNotFoundError, match="use fsdd or folder:PATH"):
        load_recordings("timit")
