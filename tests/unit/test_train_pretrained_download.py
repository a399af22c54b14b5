"""Pretrained weights on a fresh machine: downloaded once into the torch hub cache, against a real
HTTP server on 127.0.0.1 standing in for download.pytorch.org."""

from __future__ import annotations

import functools
import hashlib
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from torchvision.models import resnet18

from boneflow.errors import BoneflowError
from boneflow.train import model as model_module
from boneflow.train.model import build_model


class _CountingHandler(SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.gets.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """A real resnet18 state dict (~45 MB) served under its own sha256 prefix, and the same bytes
    under a name whose prefix is wrong."""
    folder = tmp_path_factory.mktemp("served")
    torch.manual_seed(5)
    state = resnet18(num_classes=1000).state_dict()
    raw = folder / "raw.pth"
    torch.save(state, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    wrong = "0" * 8 if not digest.startswith("0" * 8) else "f" * 8
    (folder / f"resnet18-{wrong}.pth").write_bytes(raw.read_bytes())
    raw.rename(folder / f"resnet18-{digest[:8]}.pth")
    return folder, f"resnet18-{digest[:8]}.pth", f"resnet18-{wrong}.pth", state["conv1.weight"]


@pytest.fixture
def server(weights_dir):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_CountingHandler, directory=str(weights_dir[0])))
    httpd.gets = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def _url(httpd, name):
    return f"http://127.0.0.1:{httpd.server_address[1]}/{name}"


def test_first_run_downloads_once_then_uses_the_cache(server, weights_dir, torch_home, monkeypatch, capfd, caplog):
    folder, good, _, conv1_rgb = weights_dir
    monkeypatch.setenv(model_module.WEIGHTS_URL_ENV, _url(server, good))
    caplog.set_level("INFO", logger=model_module.__name__)

    model = build_model(pretrained=True)
    assert server.gets == [f"/{good}"]
    assert torch.equal(model.conv1.weight, conv1_rgb.sum(dim=1, keepdim=True))
    assert [p.name for p in torch_home.iterdir()] == [good]
    assert (torch_home / good).read_bytes() == (folder / good).read_bytes()
    assert "100%" in capfd.readouterr().err  # torch.hub's progress bar reached the end
    assert any("downloading" in r.getMessage() for r in caplog.records)

    again = build_model(pretrained=True)
    assert server.gets == [f"/{good}"], "the second run must read the cache, not the server"
    assert torch.equal(again.conv1.weight, model.conv1.weight)


def test_wrong_hash_is_refused_and_nothing_is_cached(server, weights_dir, torch_home, monkeypatch):
    _, _, wrong, _ = weights_dir
    monkeypatch.setenv(model_module.WEIGHTS_URL_ENV, _url(server, wrong))
    with pytest.raises(BoneflowError) as caught:
        build_model(pretrained=True)
    message = str(caught.value)
    assert "sha256" in message and wrong in message and "--no-pretrained" in message
    assert server.gets == [f"/{wrong}"]
    assert list(torch_home.iterdir()) == []  # no weights, no .partial left behind


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_host_down_gives_the_offline_error(torch_home, monkeypatch):
    monkeypatch.setenv(
        model_module.WEIGHTS_URL_ENV, f"http://127.0.0.1:{_closed_port()}/{model_module.HUB_WEIGHTS_NAME}"
    )
    with pytest.raises(BoneflowError) as caught:
        build_model(pretrained=True)
    message = str(caught.value)
    assert "--no-pretrained" in message and "--weights-path" in message
    assert str(torch_home / model_module.HUB_WEIGHTS_NAME) in message and "refused" in message


def test_missing_file_on_the_host_names_the_http_status(server, torch_home, monkeypatch):
    monkeypatch.setenv(model_module.WEIGHTS_URL_ENV, _url(server, "resnet18-12345678.pth"))
    with pytest.raises(BoneflowError, match="HTTP Error 404.*--no-pretrained"):
        build_model(pretrained=True)
    assert list(torch_home.iterdir()) == []


def test_stalled_host_times_out_into_the_offline_error(torch_home, monkeypatch):
    # Listening but never answering: the TCP handshake completes, the HTTP response never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        monkeypatch.setattr(model_module, "DOWNLOAD_TIMEOUT_S", 0.5)
        monkeypatch.setenv(
            model_module.WEIGHTS_URL_ENV, f"http://127.0.0.1:{silent.getsockname()[1]}/{model_module.HUB_WEIGHTS_NAME}"
        )
        before = socket.getdefaulttimeout()
        with pytest.raises(BoneflowError, match="timed out.*--no-pretrained"):
            build_model(pretrained=True)
        assert socket.getdefaulttimeout() == before
    assert list(torch_home.iterdir()) == []


def test_explicit_weights_path_is_never_downloaded(server, weights_dir, torch_home, monkeypatch, tmp_path):
    monkeypatch.setenv(model_module.WEIGHTS_URL_ENV, _url(server, weights_dir[1]))
    with pytest.raises(BoneflowError, match="--weights-path"):
        build_model(pretrained=True, weights_path=tmp_path / "absent-f37072fd.pth")
    assert server.gets == []


def test_url_without_hash_in_its_name_is_refused(torch_home, monkeypatch):
    monkeypatch.setenv(model_module.WEIGHTS_URL_ENV, "http://127.0.0.1:9/resnet18.pth")
    with pytest.raises(BoneflowError, match=model_module.WEIGHTS_URL_ENV):
        build_model(pretrained=True)


def test_default_url_is_torchvisions_imagenet_resnet18(monkeypatch):
    from torchvision.models import ResNet18_Weights

    monkeypatch.delenv(model_module.WEIGHTS_URL_ENV, raising=False)
    assert model_module.weights_url() == ResNet18_Weights.IMAGENET1K_V1.url
    assert model_module.HUB_WEIGHTS_NAME == "resnet18-f37072fd.pth"


def test_boneflow_run_display_names_the_download(server, weights_dir, torch_home, monkeypatch, caplog):
    """`boneflow run`'s live display overdraws torch.hub's stderr bar, so it shows the core's
    download log lines on a display line of their own."""
    import logging

    from rich.progress import Progress

    from flows.cli_progress import WEIGHTS_LOGGER, WeightsLines

    assert model_module.log.name == WEIGHTS_LOGGER
    progress = Progress()
    handler = WeightsLines(progress)
    logger = logging.getLogger(WEIGHTS_LOGGER)
    logger.addHandler(handler)
    caplog.set_level(logging.INFO, logger=WEIGHTS_LOGGER)
    monkeypatch.setenv(model_module.WEIGHTS_URL_ENV, _url(server, weights_dir[1]))
    try:
        build_model(pretrained=True)
    finally:
        logger.removeHandler(handler)
    stage = progress.tasks[handler.row].description
    assert progress.tasks[handler.row].visible
    assert stage.startswith(f"pretrained weights {weights_dir[1]} downloaded and verified")
