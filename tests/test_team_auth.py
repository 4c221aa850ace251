"""A team server with MLflow's own log-in (docs/tracking.md): `mlflow server --app-name basic-auth`.
Without credentials the server answers 401; with them, the suite's commands work as on an open one."""

import base64
import urllib.error
import urllib.request

import mlflow
import pytest

from tests.servers import mlflow_server
from tests.support import run_main
from tests.toy_app import APP as TOY

PASSWORD = "a-long-team-password"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth")
    config = root / "basic_auth.ini"
    config.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root}/users.db\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-secret-for-the-test",
    }
    with mlflow_server(
        f"sqlite:///{root}/mlflow.db", root / "artifacts", root / "server.log", ["--app-name", "basic-auth"], env
    ) as url:
        yield url


def _status(url, user=None, password=None):
    request = urllib.request.Request(f"{url}/api/2.0/mlflow/experiments/search?max_results=5")
    if user:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_server_refuses_requests_without_the_right_password(server):
    assert _status(server) == 401
    assert _status(server, "admin", "wrong") == 401
    assert _status(server, "admin", PASSWORD) == 200


def test_the_suites_commands_log_in_with_mlflows_variables(server, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    result = run_main(TOY, "runs", "--tracking-uri", server, "--experiment", "team", capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert mlflow.MlflowClient(server).get_experiment_by_name("team") is not None
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    refused = run_main(TOY, "runs", "--tracking-uri", server, "--experiment", "other", capsys=capsys)
    assert refused.returncode == 2 and "MLflow cannot use this store" in refused.stderr
