"""The app keeps answering with its model when the S3 store goes away, and picks up a new
champion once the store is back and the backoff has passed."""

from __future__ import annotations

import time

import pytest

from boneflow.demo.store import write_demo_store
from boneflow.serve.app import XrayApp
from boneflow.serve.examples import write_examples
from s3_helpers import set_test_aws_env, start_moto_server

pytestmark = pytest.mark.integration


def test_store_down_while_serving(tmp_path, monkeypatch):
    set_test_aws_env()
    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    server = start_moto_server(log_dir=tmp_path)  # our own: this test freezes it
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        server.create_bucket("serve")
        url = "s3://serve/store"
        first = write_demo_store(url, image_size=64, seed=0)
        image = write_examples(tmp_path / "ex", size=96)[0]
        xray_app = XrayApp(url)
        assert xray_app.analyse(image).run_id == first

        server.freeze()  # connections hang: the worst kind of outage
        started = time.monotonic()
        assert xray_app.analyse(image).run_id == first
        assert time.monotonic() - started < 40  # bounded by the serving store's short timeouts
        assert "could not read champion.json" in xray_app.model_info()
        started = time.monotonic()
        assert xray_app.analyse(image).run_id == first  # backing off: no second wait
        assert time.monotonic() - started < 2

        server.thaw()
        second = write_demo_store(url, image_size=64, seed=1)
        xray_app.follower._retry_at = 0.0  # skip the rest of the backoff
        assert xray_app.analyse(image).run_id == second
        assert xray_app.follower.last_error is None
    finally:
        server.stop()
