"""Real servers for the team-mode tests: PostgreSQL (Debian's package) and `mlflow server`."""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tests.support import require

INSTALL_HINT = "install Debian's postgresql package (`apt-get install postgresql`; .ci/run does)"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin():
    """The folder of PostgreSQL's server programs (initdb, pg_ctl); skips the test without them."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    require(bool(candidates), "PostgreSQL's server programs", INSTALL_HINT)
    return Path(candidates[-1])


def _as_database_user(command):
    """PostgreSQL refuses to run as root: as root, run its programs as the `postgres` user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextmanager
def postgres(log_folder):
    """A PostgreSQL cluster in a temporary folder, on a loopback port; yields its SQLAlchemy URL.

    The cluster's own folder (removed afterwards) sits directly in the temporary
    directory, where the `postgres` user can reach it; its log is copied to `log_folder`.
    """
    binaries = postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="rnn-suite-postgres-"))
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()

    def run(*command):
        result = subprocess.run(_as_database_user([str(binaries / command[0]), *command[1:]]), capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        if result.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")

    run("initdb", "-D", str(data), "-U", "mlflow", "--auth", "trust", "--no-sync")
    options = f"-p {port} -k {sockets} -h 127.0.0.1 -c fsync=off"
    run("pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start")
    try:
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow")
        yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        if (folder / "server.log").exists():
            shutil.copy(folder / "server.log", Path(log_folder) / "postgres.log")
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def mlflow_server(backend_store_uri, artifacts, log_path, extra=(), env=None):
    """`mlflow server` on a loopback port over `backend_store_uri`, serving artifacts from `artifacts`
    (`extra`: more of its flags; `env`: more environment variables)."""
    port = free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri,
             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2", *extra],
            stdout=log, stderr=subprocess.STDOUT,
            # MLflow's job runner (huey workers for its GenAI jobs) is not what these tests use.
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"mlflow server did not start; its log:\n{Path(log_path).read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def chromium(*arguments, timeout=120):
    """Headless Chromium (Debian's `chromium`) with `arguments`; returns what it prints (e.g. the DOM)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    require(
        binary is not None, "Chromium", "install Debian's chromium package (`apt-get install chromium`; .ci/run does)"
    )
    with tempfile.TemporaryDirectory(prefix="rnn-suite-chromium-") as profile:
        result = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}", "--virtual-time-budget=20000", *arguments],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    if result.returncode:
        raise RuntimeError(f"chromium {' '.join(arguments)} failed:\n{result.stderr[-3000:]}")
    return result.stdout
