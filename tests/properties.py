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
