"""Latency and throughput of a logged model behind `mlflow models serve` (REST, 127.0.0.1).

    python -m benchmarks.serving --model runs:/RUN_ID/model --tracking-uri sqlite:///mlflow.db
    python -m benchmarks.serving                   # the default slot-filling model, logged to a temporary store

Starts the real server from an empty folder (`--env-manager local`), sends `--requests` requests
of one sentence each, first from one client, then from `--clients` concurrent ones, and prints
the median and 95th percentile latency and the requests per second of each. Without `--model`
the slot-filling app's default model is built on ATIS (untrained: latency does not depend on the
weights' values) and logged as `train` logs one. The server's start-up (download, imports,
model load) is printed apart.
"""

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

SENTENCE = "i want to leave boston and arrive in denver on november second"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(command, port, health, log_path, name, timeout=180, **popen):
    """Runs `command` (a server on 127.0.0.1:`port`, its output in `log_path`) until the block
    ends; yields its URL once `health` (a path) answers 200, or raises with the log's end."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **popen)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}{health}", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{name} did not start; its log:\n{Path(log_path).read_text()[-4000:]}")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def model_server(model_uri, tracking_uri, log_path, timeout=180):
    """`mlflow models serve -m MODEL_URI --env-manager local` on a loopback port, started from an
    empty folder outside the checkout with no PYTHONPATH, as a user of the logged model would:
    only what the model carries can make it load. Yields the server's URL once it answers /ping."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    # MLflow starts `uvicorn` by name: this interpreter's environment, as if it were activated.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    folder = tempfile.mkdtemp(prefix="rnn-suite-serve-")
    try:
        with running_server(
            command, port, "/ping", log_path, "mlflow models serve", timeout, cwd=folder, env=env
        ) as url:
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def invoke(url, payload, timeout=120):
    """POSTs `payload` (JSON) to the server's /invocations; (HTTP status, decoded JSON answer)."""
    request = urllib.request.Request(
        f"{url}/invocations", json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def default_model(folder):
    """The slot-filling app's default model on ATIS, logged to a SQLite store in `folder`:
    (model URI, tracking URI)."""
    import mlflow

    from apps import serving
    from apps.slot_filling import SlotFilling
    from benchmarks.common import app_train_arguments

    app = SlotFilling()
    args = app_train_arguments(app)
    data = app.load_data(args)
    path = Path(folder) / "model.keras"
    app.serving_model(app.build_model(args, data), data, args).save(path)
    tracking_uri = f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("serving-benchmark")
    with mlflow.start_run():
        info = serving.log_model(app, path)
    return info.model_uri, tracking_uri


def load(url, payload, requests, clients):
    """`requests` requests spread over `clients` threads: latencies (s) and the wall time (s)."""
    latencies, errors = [], []
    lock = threading.Lock()
    counts = [requests // clients + (i < requests % clients) for i in range(clients)]

    def client(count):
        for _ in range(count):
            start = time.perf_counter()
            status, answer = invoke(url, payload)
            elapsed = time.perf_counter() - start
            with lock:
                (latencies if status == 200 else errors).append(elapsed if status == 200 else answer)

    threads = [threading.Thread(target=client, args=(count,)) for count in counts]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return latencies, wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="runs:/ID/model or models:/NAME/VERSION (default: a fresh default model)")
    parser.add_argument("--tracking-uri", help="the MLflow store of --model")
    parser.add_argument("--text", default=SENTENCE, help="what each request sends (default: an ATIS sentence)")
    parser.add_argument("--requests", type=int, default=100, help="requests per measurement (default: %(default)s)")
    parser.add_argument(
        "--clients", type=int, default=4, help="concurrent clients of the second (default: %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per measurement")
    options = parser.parse_args(argv)
    if options.model and not options.tracking_uri:
        parser.error("--model needs --tracking-uri (the store the server downloads it from)")

    from benchmarks.common import device, print_results

    payload = {"inputs": {"text": [options.text]}}
    results = []
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(sys.stderr):
        model_uri, tracking_uri = (options.model, options.tracking_uri) if options.model else default_model(folder)
        start = time.perf_counter()
        with model_server(model_uri, tracking_uri, Path(folder) / "server.log") as url:
            started = time.perf_counter() - start
            status, answer = invoke(url, payload)  # the first request (graph tracing) is not measured
            if status != 200:
                raise SystemExit(f"the server answered {status}: {answer}")
            for clients in (1, options.clients):
                latencies, wall = load(url, payload, options.requests, clients)
                median, p95 = np.percentile(latencies, [50, 95])
                results.append({"clients": clients, "requests": len(latencies), "median_ms": 1000 * float(median),
                                "p95_ms": 1000 * float(p95), "requests_per_s": len(latencies) / wall})  # fmt: skip
    for result in results:
        result.update(model=options.model or "default slot filling (untrained)", startup_s=started, device=device())
    print_results(
        results,
        {
            "clients": "clients",
            "requests": "requests",
            "median ms": "median_ms",
            "p95 ms": "p95_ms",
            "requests/s": "requests_per_s",
        },  # fmt: skip
        options.json,
        heading=f"mlflow models serve, one sentence a request, model {results[0]['model']} "
        f"(server start {started:.1f} s); {device()}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
