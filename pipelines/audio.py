"""Audio for CTC speech recognition: FSDD recordings, connected-digit utterances, librosa features.

The Free Spoken Digit Dataset has `{digit}_{speaker}_{take}.wav` recordings,
mono 8 kHz. Connected-digit utterances are built from them: each concatenates
1 to 7 recordings of one speaker, with a random silence (50 to 300 ms) before,
between and after them, drawn by a seeded generator, so an utterance set is
the same for a given seed. Labels are the digit sequences; repeats ("1 1 2")
happen. Training utterances may also play each recording faster or slower
(speed perturbation, Ko et al. 2015: resampling changes tempo and pitch
together), so a recording heard in several utterances sounds a little
different in each. Features (log-mel or MFCC, optional deltas, per-utterance mean and
variance normalization) are computed once per utterance set and cached.
"""

import hashlib
import json
import re
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipelines.sources import (
    ChecksumError,
    DataFormatError,
    DataNotFoundError,
    RemoteDataset,
    cache_dir,
    locate,
    sha256_of,
)

SAMPLE_RATE = 8000
MANIFEST = Path(__file__).resolve().parent / "manifests" / "fsdd.sha256"
# FSDD's naming, DIGIT_SPEAKER_TAKE.wav; a user's own speakers may carry capitals, digits and dashes.
_RECORDING = re.compile(r"(?:^|/)(\d)_([A-Za-z][A-Za-z0-9-]*)_(\d+)\.wav$")


def _manifest():
    sha256 = {}
    for line in MANIFEST.read_text().splitlines():
        digest, rel = line.split(maxsplit=1)
        sha256[rel] = digest
    return sha256


FSDD = RemoteDataset(
    "fsdd", "https://raw.githubusercontent.com/Jakobovski/free-spoken-digit-dataset/master", _manifest()
)
# Silence before, between and after the recordings of an utterance, in seconds (uniform).
GAP_SECONDS = (0.05, 0.3)
# FSDD's own split uses takes 0-4 for testing; 5-9 validate here, 10 and above train (FSDD has 50
# takes a speaker; a user's folder may have more).
TAKE_SPLITS = {"test": range(0, 5), "valid": range(5, 10), "train": range(10, 2**31)}


class AudioError(DataFormatError):
    """An audio file that cannot be used; the message names it."""


@dataclass(frozen=True)
class Recording:
    path: str
    digit: int
    speaker: str
    take: int


def _recording(path):
    """The Recording a file's name describes, or None for a name not in FSDD's pattern."""
    match = _RECORDING.search(Path(path).as_posix())
    if match is None:
        return None
    digit, speaker, take = match.groups()
    return Recording(str(path), int(digit), speaker, int(take))


def fsdd_recordings(data_dir=None, progress=True):
    """FSDD's recordings: those of the manifest (from the data directory, the cache or a download;
    each checked against its SHA-256), and every other file beside them named as FSDD names its
    recordings (a newer FSDD's speakers, a user's own takes)."""
    paths = locate(FSDD, sorted(FSDD.sha256), data_dir=data_dir, progress=progress)
    for rel, path in paths.items():
        if sha256_of(path) != FSDD.sha256[rel]:
            raise ChecksumError(
                f"{path}: not the FSDD recording its name says (SHA-256 differs from {MANIFEST.name}); "
                f"restore it, or keep your own recordings in a folder of their own (--dataset folder:PATH)"
            )
    known = {path.resolve() for path in paths.values()}
    recordings = [_recording(path) for path in paths.values()]
    for folder in sorted({path.parent for path in paths.values()}):
        for path in sorted(folder.glob("*.wav")):
            if path.resolve() not in known and (recording := _recording(path)) is not None:
                recordings.append(recording)
    return recordings


def folder_recordings(folder):
    """A user's recordings: every WAV file under `folder` named DIGIT_SPEAKER_TAKE.wav (FSDD's
    naming, e.g. 7_alice_12.wav); other files are counted and said, not read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataNotFoundError(f"folder:{folder}: no such folder")
    recordings, others = [], 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        recording = _recording(path)
        if recording is None:
            others += 1
        else:
            recordings.append(recording)
    if others:
        print(f"{folder}: {others} files not named DIGIT_SPEAKER_TAKE.wav were not read", file=sys.stderr)
    if not recordings:
        raise DataFormatError(
            f"{folder}: no recordings named DIGIT_SPEAKER_TAKE.wav (FSDD's naming, e.g. 7_alice_12.wav: the "
            f"digit spoken, who spoke it, the take)"
        )
    return recordings


def load_recordings(spec, data_dir=None, progress=True):
    """The recordings of `--dataset`: `fsdd`, or `folder:PATH` (a user's own)."""
    kind, _, argument = spec.partition(":")
    if spec == "fsdd":
        return fsdd_recordings(data_dir, progress)
    if kind == "folder" and argument:
        return folder_recordings(argument)
    raise DataNotFoundError(f"--dataset {spec!r}: no such data set; use fsdd or folder:PATH")


def load_audio(path, sample_rate=SAMPLE_RATE):
    """Mono float32 samples at `sample_rate`, whatever the file's rate and channels."""
    import librosa

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa's fallback notice for non-soundfile formats
            samples, _ = librosa.load(path, sr=sample_rate, mono=True)
    except Exception as error:  # soundfile and audioread raise many types for bad files
        raise AudioError(f"{path}: not readable as audio ({type(error).__name__}: {error})") from None
    if samples.size == 0:
        raise AudioError(f"{path}: no audio samples")
    return samples.astype("float32")


# Connected digits ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Utterance:
    recordings: tuple  # of Recording
    gaps: tuple  # silence lengths in samples: before, between and after (len = recordings + 1)
    speeds: tuple = ()  # playback speed of each recording; () plays every one as recorded

    @property
    def digits(self):
        return tuple(r.digit for r in self.recordings)

    @property
    def speaker(self):
        return self.recordings[0].speaker


def build_utterances(recordings, count, seed, min_digits=1, max_digits=7, gap_seconds=GAP_SECONDS, speed_range=0.0):
    """`count` connected-digit utterances, each from one speaker's `recordings`, seeded.

    With `speed_range` r > 0 each recording in an utterance is played at a speed
    drawn uniformly from [1 - r, 1 + r], in steps of 0.01 (simple resampling
    ratios, which resample fast). The speeds come from a generator of their
    own, so the recordings and gaps are those drawn without them.
    """
    if not 0 <= speed_range < 1:
        raise ValueError(f"speed range must be in [0, 1), got {speed_range}")
    rng = np.random.default_rng(seed)
    speed_rng = np.random.default_rng([seed, 1])
    by_speaker = {}
    for recording in recordings:
        by_speaker.setdefault(recording.speaker, []).append(recording)
    speakers = sorted(by_speaker)
    if not speakers:
        raise DataFormatError("no recordings to build utterances from")
    low, high = (int(s * SAMPLE_RATE) for s in gap_seconds)
    utterances = []
    for _ in range(count):
        pool = by_speaker[speakers[rng.integers(len(speakers))]]
        n = int(rng.integers(min_digits, max_digits + 1))
        chosen = tuple(pool[i] for i in rng.integers(len(pool), size=n))
        gaps = tuple(int(g) for g in rng.integers(low, high + 1, size=n + 1))
        speeds = (
            tuple(round(float(v), 2) for v in speed_rng.uniform(1 - speed_range, 1 + speed_range, n))
            if speed_range
            else ()
        )
        utterances.append(Utterance(chosen, gaps, speeds))
    return utterances


def change_speed(samples, speed, sample_rate=SAMPLE_RATE):
    """`samples` played `speed` times as fast: resampled, so tempo and pitch change together."""
    if speed == 1:
        return samples
    import librosa

    # polyphase: fast for the ratios of 0.01 steps (soxr_hq is slow for some of them)
    rate = round(sample_rate * speed)
    return librosa.resample(samples, orig_sr=rate, target_sr=sample_rate, res_type="polyphase").astype("float32")


def with_silence(samples, seconds=sum(GAP_SECONDS) / 2, sample_rate=SAMPLE_RATE):
    """`samples` with `seconds` of silence before and after.

    Models are trained on utterances with 50-300 ms of silence around every
    recording; a tightly cut recording (as FSDD's are) read without it is
    misheard far more often (docs/results/speech_ctc.md).
    """
    silence = np.zeros(int(round(seconds * sample_rate)), dtype="float32")
    return np.concatenate([silence, samples, silence])


def synthesize(utterance, audio, sample_rate=SAMPLE_RATE):
    """The utterance's samples; `audio(path)` gives a recording's samples."""
    speeds = utterance.speeds or (1,) * len(utterance.recordings)
    pieces = [np.zeros(utterance.gaps[0], dtype="float32")]
    for recording, speed, gap in zip(utterance.recordings, speeds, utterance.gaps[1:]):
        pieces.append(change_speed(audio(recording.path), speed, sample_rate))
        pieces.append(np.zeros(gap, dtype="float32"))
    return np.concatenate(pieces)


# Features -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureConfig:
    """Librosa features: 25 ms windows every 10 ms at 8 kHz by default."""

    kind: str = "logmel"  # or "mfcc"
    n_mels: int = 40
    n_mfcc: int = 13
    deltas: bool = True
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 256
    win_length: int = 200
    hop_length: int = 80
    normalize: bool = True  # each utterance to zero mean and unit variance per band (False: as librosa gives them)

    def __post_init__(self):
        if self.kind not in ("logmel", "mfcc"):
            raise ValueError(f"feature kind must be 'logmel' or 'mfcc', got {self.kind!r}")

    @property
    def bands(self):
        """Feature bands (mel bands or cepstral coefficients), before deltas are stacked."""
        return self.n_mels if self.kind == "logmel" else self.n_mfcc

    @property
    def dims(self):
        return self.bands * (3 if self.deltas else 1)

    def frames(self, samples):
        """Frames librosa gives for `samples` samples (centred frames)."""
        return 1 + samples // self.hop_length


def features(samples, config):
    """(frames, dims) float32: log-mel or MFCC, with deltas, normalized per utterance (`config.normalize`)."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=samples, sr=config.sample_rate, n_fft=config.n_fft, win_length=config.win_length,
        hop_length=config.hop_length, n_mels=config.n_mels,
    )  # fmt: skip
    base = librosa.power_to_db(mel, ref=1.0, top_db=None)
    if config.kind == "mfcc":
        base = librosa.feature.mfcc(S=base, n_mfcc=config.n_mfcc)
    stack = [base]
    if config.deltas:
        width = min(9, base.shape[1] if base.shape[1] % 2 else base.shape[1] - 1)
        if width >= 3:
            stack += [
                librosa.feature.delta(base, width=width, order=1),
                librosa.feature.delta(base, width=width, order=2),
            ]
        else:
            stack += [np.zeros_like(base), np.zeros_like(base)]
    values = np.concatenate(stack, axis=0).T
    if config.normalize:
        values = (values - values.mean(axis=0)) / (values.std(axis=0) + 1e-5)
    return values.astype("float32")


def file_features(path, config):
    """Features of one audio file for recognition: read as a one-recording utterance.

    The file gets the silence that surrounds recordings in training utterances
    (`with_silence`), so a tightly cut recording is read as in training.
    """
    samples = load_audio(path, config.sample_rate)
    return features(with_silence(samples, sample_rate=config.sample_rate), config)


class FeatureCache:
    """Features of utterance sets, computed once and stored as .npz under `folder`.

    The file name hashes the feature settings and the utterances' recipes
    (recordings and gaps), so a changed set or setting never reads stale features.
    """

    def __init__(self, folder=None):
        self.folder = Path(folder) if folder else cache_dir() / "features"

    def key(self, utterances, config):
        recipe = {
            "config": asdict(config),
            "utterances": [
                [[Path(r.path).name for r in u.recordings], list(u.gaps)] + ([list(u.speeds)] if u.speeds else [])
                for u in utterances
            ],
        }
        return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:20]

    def load(self, utterances, config, progress=True, label="features"):
        """(list of feature arrays, list of error messages); a bad recording skips its utterances."""
        path = self.folder / f"{self.key(utterances, config)}.npz"
        if path.exists():
            stored = np.load(path, allow_pickle=False)
            lengths, flat = stored["lengths"], stored["features"]
            arrays = np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []
            errors = json.loads(str(stored["errors"]))
            return [a if n else None for a, n in zip(arrays, lengths)], errors
        from tqdm import tqdm

        audio_cache, errors, arrays = {}, [], []

        def audio(recording_path):
            if recording_path not in audio_cache:
                audio_cache[recording_path] = load_audio(recording_path, config.sample_rate)
            return audio_cache[recording_path]

        for utterance in tqdm(utterances, desc=label, unit="utt", disable=not progress, leave=False):
            try:
                arrays.append(features(synthesize(utterance, audio, config.sample_rate), config))
            except AudioError as error:
                errors.append(str(error))
                arrays.append(None)
        lengths = np.array([0 if a is None else len(a) for a in arrays])
        flat = (
            np.concatenate([a for a in arrays if a is not None])
            if any(a is not None for a in arrays)
            else np.zeros((0, config.dims), "float32")
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".partial.npz")
        np.savez(temporary, lengths=lengths, features=flat, errors=json.dumps(errors))
        temporary.replace(path)
        return arrays, errors


def mask_spectrogram(features, frames, bands, freq_masks=0, freq_width=8, time_masks=0, time_width=10):
    """SpecAugment's masking (Park et al., 2019) of a batch, for training.

    `features` (batch, time, dims) are `bands` feature bands, repeated in
    blocks (static, delta, delta-delta: dims = bands x blocks); `frames` (batch,)
    are the utterances' true lengths. Per utterance, `freq_masks` times a band
    range of width 0..`freq_width` is set to 0 (the per-utterance mean after
    normalization) in every block and at every frame, and `time_masks` times a
    span of 0..`time_width` frames inside the utterance is set to 0. The labels
    stay: the words are still said, only part of the picture is hidden.
    Random draws follow TensorFlow's global seed (`keras.utils.set_random_seed`),
    new ones at every call, so each epoch hides other parts.
    """
    import tensorflow as tf

    if not freq_masks and not time_masks:
        return features
    shape = tf.shape(features)
    batch, steps, dims = shape[0], shape[1], shape[2]
    band = tf.reshape(tf.range(dims) % bands, (1, 1, -1))
    step = tf.reshape(tf.range(steps), (1, -1, 1))
    keep = tf.ones_like(features, dtype=tf.bool)

    def span(limit, width):
        """(start, end) per utterance: a width 0..width, placed uniformly inside 0..limit."""
        size = tf.minimum(tf.random.uniform((batch,), 0, width + 1, dtype=tf.int32), limit)
        start = tf.cast(tf.random.uniform((batch,)) * tf.cast(limit - size + 1, tf.float32), tf.int32)
        start = tf.minimum(start, limit - size)
        return tf.reshape(start, (-1, 1, 1)), tf.reshape(start + size, (-1, 1, 1))

    for _ in range(freq_masks):
        start, end = span(tf.fill((batch,), bands), freq_width)
        keep &= ~((band >= start) & (band < end))
    for _ in range(time_masks):
        start, end = span(tf.cast(frames, tf.int32), time_width)
        keep &= ~((step >= start) & (step < end))
    return tf.where(keep, features, tf.zeros_like(features))
