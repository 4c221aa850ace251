"""Real servers for the tests: PostgreSQL (Debian's package), `mlflow server`, `mlflow models serve`."""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from benchmarks.serving import free_port, invoke, model_server, running_server  # noqa: F401  (the tests' helpers too)
from tests.support import require

INSTALL_HINT = "install Debian's postgresql package (`apt-get install postgresql`; .ci/run does)"


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
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri,
               "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "2", *extra]  # fmt: skip
    # MLflow's job runner (huey workers for its GenAI jobs) is not what these tests use.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
    with running_server(command, port, "/health", log_path, "mlflow server", timeout=120, env=env) as url:
        yield url


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


def check_served_as_predicted(app, model_uri, tracking_uri, inputs, log_path, capsys, params=None, flags=(), then=None):
    """A real `mlflow models serve` of `model_uri` answers `inputs` (texts, or wav paths for the
    speech apps, sent as base64 bytes) with the records `predict --json FLAGS` prints; `params`
    are the request's parameters matching FLAGS; `then(url)`: more checks on the same server.
    Returns the records."""
    import base64
    import json

    from tests.support import run_main

    result = run_main(app, "predict", "--model", model_uri, "--tracking-uri", tracking_uri, "--json", *flags,
                      *inputs, capsys=capsys)  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(expected) == len(inputs)
    if app.input_kind == "audio":
        payload = {"dataframe_split": {"columns": ["audio"],
                                       "data": [[base64.b64encode(Path(p).read_bytes()).decode()] for p in inputs]}}  # fmt: skip
        for number, record in enumerate(expected, start=1):
            record["file"] = f"input {number}"
    else:
        payload = {"inputs": {"text": list(inputs)}}
    if params:
        payload["params"] = params
    with model_server(model_uri, tracking_uri, log_path) as url:
        status, answer = invoke(url, payload)
        assert status == 200, answer
        assert answer["predictions"] == expected
        # A bad request is a 400 that says what is wrong.
        status, answer = invoke(url, {"inputs": {"wrong": ["x"]}})
        assert status == 400 and ("audio" if app.input_kind == "audio" else "text") in answer["message"], answer
        if then is not None:
            then(url)
    return expected
