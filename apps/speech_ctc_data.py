"""The speech app's data (utterances, their features, batches) and how it is scored and drawn:
digit error rate, sequence accuracy, the posteriorgram of CTC's outputs."""

from dataclasses import dataclass, field

import numpy as np

from apps.app import UserError
from layers.ctc import BLANK, edit_distance
from pipelines.audio import TAKE_SPLITS
from pipelines.sources import DataFormatError
from pipelines.audio import FeatureConfig
from pipelines.text import example_batches


@dataclass
class SpeechData:
    utterances: dict  # split -> [Utterance]
    features: dict  # split -> [array (frames, dims)]
    config: FeatureConfig
    stride: int
    batch_size: int
    seed: int
    beam_width: int = 0
    skipped: dict = field(default_factory=dict)
    masking: dict = field(default_factory=dict)  # mask_spectrogram's arguments for training batches

    def has_split(self, split):
        return bool(self.utterances.get(split))

    def labels(self, split):
        return [[d + 1 for d in u.digits] for u in self.utterances[split]]

    def batches(self, split, shuffle=False):
        columns = {
            "features": self.features[split],
            "frames": [len(f) for f in self.features[split]],
            "labels": self.labels(split),
        }
        return example_batches(
            columns, self.batch_size, shuffle_seed=self.seed if shuffle else None, length_key="features"
        )

    def output_frames(self, frames):
        return -(-np.asarray(frames) // self.stride)


def speaker_split(recordings, args):
    """{split: recordings} by take (FSDD's own split), or with the speakers of --test-speakers
    (or, in `--cv`, fold K's speaker) held out for testing."""
    speakers = sorted({r.speaker for r in recordings})
    held_out = None
    if args.fold is not None:
        if args.cv != len(speakers):
            raise UserError(f"--cv holds out one speaker per fold: use --cv {len(speakers)} ({', '.join(speakers)})")
        held_out = {speakers[args.fold]}
    elif args.test_speakers:
        held_out = set(args.test_speakers.split(","))
        unknown = held_out - set(speakers)
        if unknown:
            raise UserError(f"--test-speakers: unknown {sorted(unknown)}; the speakers are {', '.join(speakers)}")
    if held_out is None:
        splits = {s: [r for r in recordings if r.take in takes] for s, takes in TAKE_SPLITS.items()}
        rule = "by take: 0-4 test, 5-9 validate, 10 and above train"
    else:
        others = [r for r in recordings if r.speaker not in held_out]
        splits = {
            "train": [r for r in others if r.take >= 10],
            "valid": [r for r in others if r.take < 10],
            "test": [r for r in recordings if r.speaker in held_out],
        }
        rule = "by speaker: the held-out speakers test; the others' takes 0-9 validate, 10 and above train"
    empty = [split for split in ("train", "valid", "test") if not splits[split]]
    if empty:
        raise DataFormatError(
            f"{args.dataset}: no recordings for the {' and '.join(empty)} split(s) ({len(recordings)} recordings; "
            f"split {rule})"
        )
    return splits


def ctc_frames_needed(labels):
    """Frames CTC needs for a label sequence: one per label, plus a blank between repeats."""
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


def speech_metrics(references, hypotheses):
    """Digit error rate (total edits / total reference digits) and sequence accuracy."""
    edits = sum(edit_distance(r, h) for r, h in zip(references, hypotheses))
    digits = sum(len(r) for r in references)
    return {
        "digit_error_rate": edits / digits,
        "sequence_accuracy": float(np.mean([list(r) == list(h) for r, h in zip(references, hypotheses)])),
    }


def posteriorgram_figure(examples):
    """Per utterance: blank and digit probabilities over time (the lecture's picture of CTC)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(examples), 1, figsize=(11, 2.6 * len(examples)), squeeze=False)
    colors = plt.cm.tab10(np.arange(10))
    for axis, (probabilities, reference, hypothesis) in zip(axes[:, 0], examples):
        frames = np.arange(len(probabilities))
        axis.fill_between(frames, probabilities[:, BLANK], color="0.85", label="blank")
        for digit in range(10):
            axis.plot(frames, probabilities[:, digit + 1], color=colors[digit], label=str(digit))
        axis.set(ylim=(0, 1.02), ylabel="probability")
        axis.set_title(f"reference {' '.join(map(str, reference))}   decoded {' '.join(map(str, hypothesis))}")
    axes[-1, 0].set_xlabel("output frame")
    axes[0, 0].legend(ncol=11, fontsize=7, loc="upper right")
    figure.tight_layout()
    return figure
