"""The app under load and abuse: login enforced by the real server, bounded queue, uploads
dropped from Gradio's cache, a warning when exposed without a password."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from app_process import running_app
from boneflow.cli.main import app as cli_app
from boneflow.demo.store import write_demo_store
from boneflow.serve.errors import ServeError

USER, PASSWORD = "alice", "correct:horse-battery"  # a ':' inside the password is allowed


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("auth-store") / "store"
    write_demo_store(str(path), image_size=64, seed=0)
    return path


@pytest.fixture(scope="module")
def app_with_auth(store, tmp_path_factory):
    """`boneflow app` in a subprocess, password from BONEFLOW_APP_AUTH; yields its base URL."""
    with running_app(
        store, tmp_path_factory.mktemp("auth-app"), env={"BONEFLOW_APP_AUTH": f"{USER}:{PASSWORD}"}
    ) as url:
        yield url


def test_requests_without_a_login_are_refused(app_with_auth):
    assert httpx.get(app_with_auth + "/gradio_api/info", timeout=10).status_code == 401
    call = httpx.post(app_with_auth + "/gradio_api/call/predict", json={"data": [None]}, timeout=10)
    assert call.status_code == 401
    wrong = httpx.post(app_with_auth + "/login", data={"username": USER, "password": "guess"}, timeout=10)
    assert wrong.status_code >= 400 and not wrong.cookies


def test_a_login_opens_the_api(app_with_auth):
    with httpx.Client(base_url=app_with_auth, timeout=10) as client:
        login = client.post("/login", data={"username": USER, "password": PASSWORD})
        assert login.status_code == 200, login.text
        info = client.get("/gradio_api/info")
        assert info.status_code == 200 and "predict" in info.text


def test_queue_is_bounded_uploads_expire_and_errors_stay_private(store, tmp_path, monkeypatch):
    from boneflow.serve.app import prepare_app

    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    demo, launch = prepare_app(str(store), max_queue=7, auth=(USER, PASSWORD))
    assert demo._queue.max_size == 7
    assert demo.delete_cache == (3600, 3600)
    assert launch["auth"] == (USER, PASSWORD) and launch["share"] is False and launch["show_error"] is False
    assert launch["max_file_size"] == 25 * 2**20 and len(launch["allowed_paths"]) == 1


def test_parse_auth_and_the_exposure_warning():
    from boneflow.serve.app import exposure_warning, parse_auth

    assert parse_auth(f"{USER}:{PASSWORD}") == (USER, PASSWORD)
    assert parse_auth(None) is None and parse_auth("") is None
    for bad in ("alice", "alice:", ":pw"):
        with pytest.raises(ServeError, match="user:password") as err:
            parse_auth(bad)
        assert bad not in str(err.value) or bad == "alice"  # the secret part is never echoed
    assert exposure_warning("127.0.0.1", None) is None and exposure_warning("localhost", None) is None
    assert "without --auth" in exposure_warning("0.0.0.0", None)
    assert exposure_warning("0.0.0.0", (USER, PASSWORD)) is None


def test_cli_rejects_a_malformed_auth_without_echoing_it(tmp_path):
    # Checked before the store is opened (an empty folder here), so nothing is served.
    result = CliRunner().invoke(cli_app, ["app", "--store", str(tmp_path)], env={"BONEFLOW_APP_AUTH": "onlyasecret"})
    assert result.exit_code == 2
    assert "user:password" in result.stderr and "onlyasecret" not in result.output
