"""Acquisition and layout: kagglehub's real cache path offline, which download failures are retried
(through kagglehub's real client against an unresolvable host, a closed port and a local HTTP
server), layout errors."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from boneflow.intake.acquire import AcquireError, DatasetVersion, acquire, dataset_fingerprint
from boneflow.intake.kaggle_errors import classify_download_error
from boneflow.intake.layout import CLASSES, SPLITS, LayoutError, scan_layout

NEST = "Bone_Fracture_Binary_Classification"


def make_tree(root: Path, *, skip: set[str] = frozenset()) -> Path:
    for s in SPLITS:
        for c in CLASSES:
            if s in skip or f"{s}/{c}" in skip:
                continue
            (root / s / c).mkdir(parents=True, exist_ok=True)
            (root / s / c / "a.jpg").write_bytes(f"{s}{c}".encode())
    return root


def test_doubly_nested_kaggle_layout_is_found(tmp_path):
    inner = make_tree(tmp_path / NEST / NEST)
    got = acquire(data_dir=tmp_path, kaggle_handle="unused/unused")
    assert got.root == inner
    assert got.version.source == "local" and got.version.file_count == 6
    assert got.version.fingerprint == dataset_fingerprint(inner)[0]


def test_missing_split_is_named(tmp_path):
    make_tree(tmp_path, skip={"val"})
    with pytest.raises(LayoutError, match=r"val/") as info:
        acquire(data_dir=tmp_path, kaggle_handle="x/y")
    assert str(tmp_path) in str(info.value)


def test_missing_class_is_named(tmp_path):
    make_tree(tmp_path, skip={"test/fractured"})
    with pytest.raises(LayoutError, match=r"test/fractured/"):
        acquire(data_dir=tmp_path, kaggle_handle="x/y")


def test_no_splits_anywhere_says_where_it_looked(tmp_path):
    (tmp_path / "photos" / "cats").mkdir(parents=True)
    with pytest.raises(LayoutError, match=r"No folder with train/val/test") as info:
        acquire(data_dir=tmp_path, kaggle_handle="x/y")
    assert "photos" in str(info.value)


def test_fingerprint_changes_with_content_and_name(tmp_path):
    root = make_tree(tmp_path / "d")
    first = dataset_fingerprint(root)[0]
    (root / "train" / "fractured" / "a.jpg").write_bytes(b"changed")
    second = dataset_fingerprint(root)[0]
    (root / "train" / "fractured" / "a.jpg").rename(root / "train" / "fractured" / "b.jpg")
    assert len({first, second, dataset_fingerprint(root)[0]}) == 3


def test_stray_and_empty_are_listed(tmp_path):
    root = make_tree(tmp_path)
    (root / "notes.txt").write_text("x")
    (root / "train" / "fractured" / "sub").mkdir()
    (root / "extras").mkdir()
    layout = scan_layout(root)
    assert "notes.txt" in layout.stray_files
    assert {"extras", "train/fractured/sub"} <= set(layout.stray_folders)
    assert {"extras", "train/fractured/sub"} <= set(layout.empty_folders)
    assert len(layout.entries) == 6


def test_versioned_handle_is_served_from_kagglehub_cache_offline(tmp_path, monkeypatch):
    # kagglehub 1.0.3 layout: <cache>/datasets/<owner>/<name>/versions/<N>/ and the completion
    # marker <cache>/datasets/<owner>/<name>/<N>.complete. A resolver that touched the network
    # would fail here: the API endpoint is pointed at a closed local port.
    cache = tmp_path / "kh"
    folder = cache / "datasets" / "bmadushanirodrigo" / "fracture-multi-region-x-ray-data" / "versions" / "2"
    inner = make_tree(folder / NEST / NEST)
    (folder.parent.parent / "2.complete").write_text("")
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(cache))
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")  # http://localhost:7777: nothing listens
    got = acquire(data_dir=None, kaggle_handle="bmadushanirodrigo/fracture-multi-region-x-ray-data/versions/2")
    assert got.root == inner
    assert got.version.source == "kaggle" and got.version.version == "2" and got.version.file_count == 6
    assert DatasetVersion(**got.version.to_dict()) == got.version


HANDLE = "bmadushanirodrigo/fracture-multi-region-x-ray-data"


@pytest.fixture
def kaggle_at(tmp_path, monkeypatch):
    """Point kagglehub's real client (kagglesdk's TEST environment) at `url`; an empty cache."""
    from kagglesdk import kaggle_env

    def point(url: str) -> None:
        monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kh"))
        monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")
        monkeypatch.setitem(kaggle_env._env_to_endpoint, kaggle_env.KaggleEnv.TEST, url)

    return point


class Attempts:
    """The retry lines acquire() announces and the waits it asks for (none really taken)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.waits: list[float] = []

    def run(self, **kwargs):
        return acquire(
            data_dir=None, kaggle_handle=HANDLE, on_retry=self.lines.append, sleep=self.waits.append, **kwargs
        )


def test_a_name_resolution_failure_is_not_retried(kaggle_at):
    # RFC 6761: .invalid never resolves, with or without network
    kaggle_at("http://kaggle-api.invalid")
    attempts = Attempts()
    with pytest.raises(AcquireError, match=r"--data-dir") as info:
        attempts.run()
    assert attempts.lines == [] and attempts.waits == []
    message = str(info.value)
    assert "unreachable" in message and "name resolution failed" in message and "so none was made" in message


def test_a_refused_connection_is_not_retried(kaggle_at):
    with socket.socket() as closed:  # a port that was free a moment ago: nothing listens there
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    kaggle_at(f"http://127.0.0.1:{port}")
    attempts = Attempts()
    with pytest.raises(AcquireError, match=r"connection refused") as info:
        attempts.run()
    assert attempts.lines == [] and "boneflow demo-data" in str(info.value)


class _Kaggle(BaseHTTPRequestHandler):
    """A Kaggle API that answers every request with the status the test set."""

    status = 503
    requests = 0

    def do_POST(self):  # noqa: N802 (http.server's name)
        type(self).requests += 1
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_kaggle(kaggle_at):
    def serve(status: int) -> type[_Kaggle]:
        handler = type("Kaggle", (_Kaggle,), {"status": status, "requests": 0})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        kaggle_at(f"http://127.0.0.1:{server.server_address[1]}")
        return handler

    servers: list[ThreadingHTTPServer] = []
    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [401, 403, 404])
def test_kaggle_saying_no_fails_at_once_with_the_handle_hint(fake_kaggle, status):
    kaggle = fake_kaggle(status)
    attempts = Attempts()
    with pytest.raises(AcquireError, match=r"Check the handle") as info:
        attempts.run()
    assert kaggle.requests == 1 and attempts.lines == [], (kaggle.requests, attempts.lines)
    assert str(status) in str(info.value)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_answers_are_retried_with_a_line_per_attempt(fake_kaggle, status):
    kaggle = fake_kaggle(status)
    attempts = Attempts()
    with pytest.raises(AcquireError, match=r"failed 3 times") as info:
        attempts.run(retries=3)
    assert kaggle.requests == 3
    assert attempts.lines == [
        f"Kaggle: attempt 2/3 in 20 s: HTTP {status}",
        f"Kaggle: attempt 3/3 in 40 s: HTTP {status}",
    ]
    assert attempts.waits == [20, 40] and "--data-dir" in str(info.value)


def test_one_attempt_allowed_means_no_retry_line(fake_kaggle):
    kaggle = fake_kaggle(503)
    attempts = Attempts()
    with pytest.raises(AcquireError):
        attempts.run(retries=1)
    assert kaggle.requests == 1 and attempts.lines == [] and attempts.waits == []


def test_timeouts_and_dropped_connections_count_as_transient():
    import requests

    def raised(outer: Exception, inner: BaseException) -> Exception:
        try:
            try:
                raise inner
            except BaseException:
                raise outer  # noqa: B904 (linked by __context__, as urllib3/requests do)
        except Exception as err:
            return err

    timeout = classify_download_error(raised(requests.ConnectTimeout("connect timed out"), TimeoutError("timed out")))
    assert timeout.retryable and timeout.reason == "timed out"
    reset = classify_download_error(raised(requests.ConnectionError("reset"), ConnectionResetError("peer reset")))
    assert reset.retryable
    refused = classify_download_error(raised(requests.ConnectionError("x"), ConnectionRefusedError("refused")))
    assert not refused.retryable and refused.unreachable
    not_found = classify_download_error(ValueError("Invalid handle 'x'"))  # kagglehub's own checks
    assert not not_found.retryable and not not_found.unreachable
