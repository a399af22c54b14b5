"""S3Store without a server: URL parsing, client settings, and how server answers to
conditional writes map to errors (botocore's Stubber plays the server). The real-server
tests are in tests/integration/test_store_s3_server.py."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from boneflow.store import ConditionalWritesUnsupportedError, ConflictError, StoreError, open_store
from boneflow.store.s3 import S3Store, parse_s3_url


@pytest.fixture(autouse=True)
def _dummy_aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)


def _store(**kw) -> S3Store:
    return open_store("s3://bucket/some/prefix", endpoint_url="http://127.0.0.1:9", check_bucket=False, **kw)


@pytest.mark.parametrize(
    "url,expected",
    [
        ("s3://b", ("b", "")),
        ("s3://b/", ("b", "")),
        ("s3://b/p", ("b", "p/")),
        ("s3://b/p/q/", ("b", "p/q/")),
    ],
)
def test_parse_s3_url(url, expected):
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize("url", ["s3://", "s3:///x", "s3://b/../x"])
def test_bad_s3_urls(url):
    with pytest.raises(StoreError):
        parse_s3_url(url)


def test_client_gets_bounded_retries_and_timeouts():
    store = _store(max_attempts=3, connect_timeout=2, read_timeout=7)
    cfg = store._client.meta.config
    assert cfg.retries == {"mode": "standard", "total_max_attempts": 3}
    assert (cfg.connect_timeout, cfg.read_timeout) == (2, 7)
    assert store.endpoint_url == "http://127.0.0.1:9"


def test_endpoint_comes_from_aws_endpoint_url(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    store = open_store("s3://bucket", check_bucket=False)
    assert store.endpoint_url == "http://127.0.0.1:4566"  # boto3 reads the variable itself
    assert (
        open_store("s3://bucket", endpoint_url="http://127.0.0.1:9", check_bucket=False).endpoint_url
        == "http://127.0.0.1:9"
    )  # the explicit setting wins


@pytest.mark.parametrize(
    "status,code,error",
    [
        (412, "PreconditionFailed", ConflictError),
        (409, "ConditionalRequestConflict", ConflictError),
        (404, "NoSuchKey", ConflictError),  # If-Match on a pointer deleted meanwhile
        (501, "NotImplemented", ConditionalWritesUnsupportedError),
        (500, "InternalError", StoreError),
    ],
)
def test_conditional_put_error_mapping(status, code, error):
    store = _store()
    store._conditional_checked = True  # the probe is tested below
    with Stubber(store._client) as stub:
        stub.add_client_error("put_object", service_error_code=code, http_status_code=status)
        with pytest.raises(error) as info:
            store.put_if("champion.json", b"{}", etag='"abc"')
    assert "champion.json" in str(info.value) or "conditional writes" in str(info.value)
    assert "testing" not in str(info.value)  # never the credentials


def test_probe_detects_a_server_that_ignores_if_none_match():
    store = _store()
    with Stubber(store._client) as stub:
        stub.add_response("put_object", {"ETag": '"1"'})
        stub.add_response("put_object", {"ETag": '"2"'})  # accepted twice: header ignored
        stub.add_response("delete_object", {})
        with pytest.raises(ConditionalWritesUnsupportedError, match="does not support conditional writes"):
            store.put_if("champion.json", b"{}", etag=None)


def test_probe_detects_a_server_that_ignores_if_match():
    store = _store()
    with Stubber(store._client) as stub:
        stub.add_response("put_object", {"ETag": '"1"'})
        stub.add_client_error("put_object", service_error_code="PreconditionFailed", http_status_code=412)
        stub.add_response("put_object", {"ETag": '"3"'})  # wrong If-Match accepted
        stub.add_response("delete_object", {})
        with pytest.raises(ConditionalWritesUnsupportedError, match="If-Match with a wrong ETag"):
            store.put_if("champion.json", b"{}", etag=None)


def test_probe_passes_on_a_conforming_server_and_runs_once():
    store = _store()
    with Stubber(store._client) as stub:
        stub.add_response("put_object", {"ETag": '"1"'})
        stub.add_client_error("put_object", service_error_code="PreconditionFailed", http_status_code=412)
        stub.add_client_error("put_object", service_error_code="PreconditionFailed", http_status_code=412)
        stub.add_response("delete_object", {})
        stub.add_response("put_object", {"ETag": '"new"'})  # the real write
        stub.add_response("put_object", {"ETag": '"newer"'})  # a second write: no new probe
        assert store.put_if("champion.json", b"{}", etag=None) == '"new"'
        assert store.put_if("champion.json", b"{}", etag='"new"') == '"newer"'
        stub.assert_no_pending_responses()


def test_missing_credentials_is_a_clear_error(monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StoreError, match="no AWS credentials found"):
        _store().get_bytes("champion.json")
