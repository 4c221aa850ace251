"""The reference EVALB (../shared/tools/evalb, C source): built once per test process in a temporary
folder, run on files, its summary read back. The parsing scorer is checked against it."""

import functools
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support import SHARED_DATA

EVALB = SHARED_DATA.parent / "tools" / "evalb"  # ../shared/tools/evalb beside ../shared/data


@functools.cache
def evalb_binary():
    """The compiled `evalb`, or None without the source or a C compiler (gcc)."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None or not (EVALB / "evalb.c").is_file():
        return None
    folder = Path(tempfile.mkdtemp(prefix="evalb-"))
    shutil.copy(EVALB / "evalb.c", folder / "evalb.c")
    subprocess.run([compiler, "-O", "-o", "evalb", "evalb.c"], cwd=folder, check=True, capture_output=True)
    return folder / "evalb"


def require_evalb():
    """Skips (fails under RNN_SUITE_REQUIRE_SERVICES=1) without EVALB's source or a C compiler."""
    from tests.support import require

    require(evalb_binary() is not None, "EVALB's source or a C compiler", "gcc (Debian: gcc) and ../shared/tools/evalb")


def run_evalb(gold, test, parameters=EVALB / "COLLINS.prm"):
    """{section: {name: value}} of EVALB's summary ("All" and "len<=40") for files `gold`, `test`."""
    output = subprocess.run(
        [str(evalb_binary()), "-p", str(parameters), str(gold), str(test)], capture_output=True, text=True, check=True
    ).stdout
    summary, section = {}, None
    for line in output[output.index("=== Summary ===") :].splitlines():
        if line.startswith("-- "):
            section = line.strip("- ").strip()
            summary[section] = {}
        elif section and (match := re.match(r"(.+?)\s+=\s+([\d.]+)", line)):
            summary[section][match.group(1).strip()] = float(match.group(2))
    return summary
