"""Integration fixtures: a real moto S3 server over HTTP (tests/s3_helpers.py)."""

from __future__ import annotations

import uuid

import pytest

from s3_helpers import set_test_aws_env, start_moto_server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """{endpoint_url, port, pid, server}: one moto server for the whole session."""
    set_test_aws_env()
    server = start_moto_server(log_dir=tmp_path_factory.mktemp("moto"))
    try:
        yield server.as_dict()
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch):
    """A fresh bucket per test; AWS_ENDPOINT_URL points boto3 at the moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["endpoint_url"])
    name = "bf-" + uuid.uuid4().hex[:12]
    s3_server["server"].create_bucket(name)
    return name
