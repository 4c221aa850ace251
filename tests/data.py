"""Where the tests find the shared local copies of the data sets."""

import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("RNN_SUITE_DATA") or REPOSITORY.parent / "shared" / "data").resolve()

if not (SHARED_DATA / "atis" / "train" / "seq.in").is_file():
    raise RuntimeError(
        f"The tests read the data sets from {SHARED_DATA}, which does not hold them. "
        f"Set RNN_SUITE_DATA to the folder with atis/, snips/, fsdd/, ... (e.g. ../shared/data)."
    )
