"""Counting what Hypothesis generated: each property test tallies how its cases ended (loaded,
or refused with which of the project's errors) and writes the tally to
test-artifacts/properties/NAME.json, the figures docs/reliability.md reports."""

import json
from collections import Counter

from tests.support import TEST_ARTIFACTS


class Tally:
    def __init__(self, name):
        self.name, self.counts = name, Counter()

    def __call__(self, outcome):
        self.counts[outcome] += 1

    def refused(self, error):
        self.counts[f"refused: {type(error).__name__}"] += 1

    def write(self):
        folder = TEST_ARTIFACTS / "properties"
        folder.mkdir(parents=True, exist_ok=True)
        summary = {"cases": sum(self.counts.values()), **dict(sorted(self.counts.items()))}
        (folder / f"{self.name}.json").write_text(json.dumps(summary, indent=1) + "\n")
        return summary


def check_predictions(app, model, inputs, validate, name, extra=(), examples=40):
    """Hypothesis's `inputs` (lists of predict inputs) through `predict`'s own checks and the app's
    `predict` on `model`, as the command line runs them (`read_inputs` first): each ends in
    predictions `validate(inputs as read, results)` accepts, or in the
    project's own error; anything else fails the test. Returns the tally."""
    from hypothesis import HealthCheck, given, settings

    from apps import runner, saved
    from apps.app import UserError
    from pipelines.sources import DataFormatError

    args = runner.build_parser(app).parse_args(["predict", "--model", "unused", *extra])
    tally = Tally(name)

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(inputs)
    def check(items):
        try:
            items = app.read_inputs(saved.checked_inputs(items))
            results = app.predict(model, items, args)
        except (UserError, DataFormatError) as error:
            tally.refused(error)
            return
        validate(items, results)
        tally("predicted")

    check()
    return tally.write()


def text_inputs():
    """Lists of 1-3 texts: any Unicode (control characters, emoji, empty, blank), long texts, and
    texts that look like paths."""
    from hypothesis import strategies as st

    text = st.one_of(
        st.text(max_size=120),
        st.text(" \t\n\r\x0b\x0c\u00a0\u2028", max_size=5),
        st.integers(300, 5000).map(lambda n: "recurrent networks, " * n),
        st.sampled_from([".", "/", "a\x00b", "🙂" * 40, "/no/such/file.txt", "x" * 5000]),
    )
    return st.lists(text, min_size=1, max_size=3)


def wav_bytes(frames, rate=8000, channels=1):
    """A 16-bit PCM WAV file's bytes: `frames` seeded random samples per channel."""
    import io
    import wave

    import numpy as np

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(np.random.default_rng(frames).integers(-9000, 9000, frames * channels, dtype="<i2").tobytes())
    return buffer.getvalue()
