"""The store and publishing through a REAL S3 server: moto's standalone server over HTTP on
127.0.0.1, started by the tests (tests/s3_helpers.py). A second boto3 session and the aws CLI
read back what was published.

What moto 5.2.5 emulates, as found by these tests and a probe: PutObject honours
If-None-Match: * and If-Match (412 PreconditionFailed; If-Match on a missing key gives 404
NoSuchKey), ETags are MD5 (multipart: md5-of-md5s with a "-N" suffix). What it does NOT: the
condition check and the write are not atomic inside moto (check-then-write in a threaded server),
so truly simultaneous conditional writes can occasionally both succeed against moto - real S3
and MinIO check atomically. The race test here therefore interleaves the two promotions
deterministically (both read the pointer, then both write); the exactly-one-wins property under
real simultaneity is tested on LocalStore (tests/unit/test_store_local.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from boneflow.registry.publish import (
    ChampionConflictError,
    champion_record,
    fetch_run_file,
    promote,
    publish_run,
    read_champion,
    read_manifest,
)
from boneflow.registry.transfer import fetch_dataset, upload_dataset
from boneflow.splits.pack import PackedDataset
from boneflow.store import (
    CHAMPION_KEY,
    ConditionalWritesUnsupportedError,
    ConflictError,
    IntegrityError,
    LocalStore,
    StoreError,
    StoreUnavailableError,
    new_run_id,
    open_store,
)
from s3_helpers import TEST_AWS_ENV, start_moto_server

pytestmark = pytest.mark.integration

METRICS = {"splits": {"test_clean": {"n": 50, "accuracy": 0.94, "recall_fractured": 0.93}}}
FAST = {"max_attempts": 2, "connect_timeout": 1, "read_timeout": 1}  # bounded fault handling


def _files(tmp_path: Path, tag: str) -> dict:
    model = tmp_path / f"model-{tag}.safetensors"
    model.write_bytes(os.urandom(300_000))
    return {
        "model.safetensors": model,
        "model.json": b'{"architecture": "resnet18"}',
        "metrics.json": json.dumps(METRICS).encode(),
        "report.md": b"# r\n",
        "model_card.md": b"# card\n",
        "confusion_matrix.png": os.urandom(2000),
        "checkpoints/epoch-0001.pt": os.urandom(5000),
    }


def _champion(manifest: dict) -> dict:
    return champion_record(
        run_id=manifest["run_id"],
        manifest=manifest,
        metrics=METRICS,
        dataset_fingerprint="ab" * 8,
        config_fingerprint="cd" * 8,
    )


def _second_client(endpoint_url):
    import boto3

    return boto3.session.Session(
        aws_access_key_id=TEST_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=TEST_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    ).client("s3", endpoint_url=endpoint_url)


def test_basic_ops_endpoint_from_env_and_multipart(s3_bucket, s3_server, tmp_path):
    store = open_store(
        f"s3://{s3_bucket}/pre/fix", multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
    )
    assert store.endpoint_url == s3_server["endpoint_url"]  # from AWS_ENDPOINT_URL alone
    store.put_bytes("runs/a/x.json", b"{}")
    assert store.get_bytes("runs/a/x.json") == b"{}"
    assert store.size("runs/a/x.json") == 2 and store.size("runs/a/y.json") is None
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    store.put_file("datasets/big.bin", big)
    head = _second_client(s3_server["endpoint_url"]).head_object(Bucket=s3_bucket, Key="pre/fix/datasets/big.bin")
    assert head["ETag"].endswith('-3"')  # boto3's transfer manager uploaded it in 3 parts
    store.get_file("datasets/big.bin", tmp_path / "dl" / "big.bin")
    assert (tmp_path / "dl" / "big.bin").read_bytes() == big.read_bytes()
    assert store.list() == ["datasets/big.bin", "runs/a/x.json"]
    assert store.list("runs/") == ["runs/a/x.json"]
    assert store.size("datasets/big.bin") == big.stat().st_size
    data, etag = store.read_with_etag("runs/a/x.json")
    assert data == b"{}" and etag == head_etag(store, "runs/a/x.json")


def head_etag(store, key):
    return store._client.head_object(Bucket=store.bucket, Key=store.prefix + key)["ETag"]


def test_missing_bucket_is_named_with_how_to_create(s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["endpoint_url"])
    with pytest.raises(
        StoreError, match=r"bucket 'no-such-bucket' does not exist.*aws s3 mb s3://no-such-bucket --endpoint-url"
    ):
        open_store("s3://no-such-bucket/x")


def test_conditional_writes_on_moto(s3_bucket):
    store = open_store(f"s3://{s3_bucket}")
    etag1 = store.put_if(CHAMPION_KEY, b"v1", etag=None)
    with pytest.raises(ConflictError):
        store.put_if(CHAMPION_KEY, b"again", etag=None)
    etag2 = store.put_if(CHAMPION_KEY, b"v2", etag=etag1)
    with pytest.raises(ConflictError):
        store.put_if(CHAMPION_KEY, b"stale", etag=etag1)
    assert store.read_with_etag(CHAMPION_KEY) == (b"v2", etag2)
    assert store.list() == [CHAMPION_KEY]  # the capability probe cleaned up after itself


def test_server_ignoring_conditions_is_refused(s3_bucket):
    """A server that drops If-None-Match / If-Match (emulated by stripping the headers on the
    wire before they reach moto) is detected, and nothing is promoted."""
    store = open_store(f"s3://{s3_bucket}")

    def strip(request, **_):
        for header in ("If-None-Match", "If-Match"):
            if header in request.headers:
                del request.headers[header]

    store._client.meta.events.register("before-sign.s3.PutObject", strip)
    with pytest.raises(ConditionalWritesUnsupportedError, match="does not support conditional writes"):
        store.put_if(CHAMPION_KEY, b"{}", etag=None)
    assert store.size(CHAMPION_KEY) is None


def test_publish_same_layout_as_local_and_hashes_match_for_other_readers(s3_bucket, s3_server, tmp_path):
    run_id = new_run_id()
    files = _files(tmp_path, "a")
    s3 = open_store(f"s3://{s3_bucket}/team")
    local = LocalStore(tmp_path / "local-store")
    for store in (s3, local):
        manifest = publish_run(store, run_id, files)
        promote(store, _champion(manifest), expected_etag=None)
    assert s3.list() == local.list()
    assert s3.list() == sorted([CHAMPION_KEY, f"runs/{run_id}/manifest.json"] + [f"runs/{run_id}/{n}" for n in files])
    # A second, independent boto3 session reads every object and checks the manifest.
    other = _second_client(s3_server["endpoint_url"])
    manifest = json.loads(other.get_object(Bucket=s3_bucket, Key=f"team/runs/{run_id}/manifest.json")["Body"].read())
    assert set(manifest["files"]) == set(files)
    for name, entry in manifest["files"].items():
        body = other.get_object(Bucket=s3_bucket, Key=f"team/runs/{run_id}/{name}")["Body"].read()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (entry["size"], entry["sha256"])
    champion = json.loads(other.get_object(Bucket=s3_bucket, Key="team/champion.json")["Body"].read())
    assert champion["run_id"] == run_id
    assert champion["model_sha256"] == hashlib.sha256(files["model.safetensors"].read_bytes()).hexdigest()


@pytest.mark.skipif(shutil.which("aws") is None, reason="aws CLI not installed")
def test_aws_cli_reads_what_was_published(s3_bucket, s3_server, tmp_path):
    run_id = new_run_id()
    manifest = publish_run(open_store(f"s3://{s3_bucket}"), run_id, _files(tmp_path, "cli"))
    env = {**os.environ, **TEST_AWS_ENV, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    out = tmp_path / "cli"
    subprocess.run(
        [
            "aws",
            "s3",
            "cp",
            "--recursive",
            "--only-show-errors",
            "--endpoint-url",
            s3_server["endpoint_url"],
            f"s3://{s3_bucket}/runs/{run_id}/",
            str(out),
        ],
        check=True,
        env=env,
        timeout=60,
        capture_output=True,
    )
    for name, entry in manifest["files"].items():
        data = (out / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"]), name


def test_corrupted_object_is_detected_on_download(s3_bucket, s3_server, tmp_path):
    store = open_store(f"s3://{s3_bucket}")
    run_id = new_run_id()
    publish_run(store, run_id, _files(tmp_path, "c"))
    fetch_run_file(store, run_id, "model.safetensors", tmp_path / "ok.safetensors")  # fine before
    key = f"runs/{run_id}/model.safetensors"
    other = _second_client(s3_server["endpoint_url"])
    good = other.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    other.put_object(Bucket=s3_bucket, Key=key, Body=good[:-1] + bytes([good[-1] ^ 1]))
    dest = tmp_path / "bad" / "model.safetensors"
    with pytest.raises(IntegrityError, match=key):
        fetch_run_file(store, run_id, "model.safetensors", dest)
    assert not dest.exists()


def test_dataset_roundtrip_and_corruption(s3_bucket, s3_server, tmp_path):
    store = open_store(f"s3://{s3_bucket}")
    packed = tmp_path / "packed"
    packed.mkdir()
    for name in ("manifest.json", "train_images.npy", "train_labels.npy"):
        (packed / name).write_bytes(os.urandom(4000))
    fp = "ef" * 32
    dataset = PackedDataset(packed, 64, (), fp)
    assert upload_dataset(store, dataset)["uploaded"] is True
    assert upload_dataset(store, dataset)["uploaded"] is False
    got = fetch_dataset(store, fp, 64, tmp_path / "got")
    assert (got / "train_images.npy").read_bytes() == (packed / "train_images.npy").read_bytes()
    _second_client(s3_server["endpoint_url"]).put_object(
        Bucket=s3_bucket, Key=f"datasets/{fp}/64/train_labels.npy", Body=b"tampered"
    )
    with pytest.raises(IntegrityError, match=f"datasets/{fp}/64/train_labels.npy"):
        fetch_dataset(store, fp, 64, tmp_path / "got2")


@pytest.mark.parametrize("has_champion", [False, True], ids=["first-champion", "replace-champion"])
def test_two_promotions_exactly_one_wins(s3_bucket, tmp_path, has_champion):
    url = f"s3://{s3_bucket}"
    first, second = open_store(url), open_store(url)  # two runs, two clients
    if has_champion:
        old = publish_run(first, new_run_id(), _files(tmp_path, "old"))
        promote(first, _champion(old), expected_etag=None)
    run_a = publish_run(first, new_run_id(), _files(tmp_path, "a"))
    run_b = publish_run(second, new_run_id(), _files(tmp_path, "b"))
    # Both finish together: both read the same pointer before either writes.
    seen_a, seen_b = read_champion(first), read_champion(second)
    etag_a = seen_a[1] if seen_a else None
    etag_b = seen_b[1] if seen_b else None
    assert etag_a == etag_b
    promote(first, _champion(run_a), expected_etag=etag_a)
    with pytest.raises(ChampionConflictError, match=f"{run_b['run_id']} was published but NOT promoted"):
        promote(second, _champion(run_b), expected_etag=etag_b)
    assert read_champion(second)[0]["run_id"] == run_a["run_id"]
    assert read_manifest(second, run_b["run_id"])["files"]  # the loser stays published


class _StopAfter:
    """Wraps a store: runs `action` once `n` uploads have gone through (mid-publish)."""

    def __init__(self, store, n, action):
        self.store, self.n, self.action, self.writes = store, n, action, []

    def __getattr__(self, name):
        return getattr(self.store, name)

    def _count(self, key):
        self.writes.append(key)
        if len(self.writes) == self.n + 1:
            self.action()

    def put_bytes(self, key, data):
        self._count(key)
        return self.store.put_bytes(key, data)

    def put_file(self, key, path):
        self._count(key)
        return self.store.put_file(key, path)

    def put_if(self, key, data, *, etag):
        self._count(key)
        return self.store.put_if(key, data, etag=etag)


def _publish_then_promote(store, run_id, files):
    """What the flow does: publish, then promote (only reached if publishing finished)."""
    manifest = publish_run(store, run_id, files)
    found = read_champion(store)
    promote(store, _champion(manifest), expected_etag=found[1] if found else None)


def test_server_killed_mid_publish_bounded_retries_clear_error(tmp_path, monkeypatch):
    server = start_moto_server(log_dir=tmp_path)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        server.create_bucket("fault")
        store = _StopAfter(open_store("s3://fault", **FAST), 2, server.stop)
        start = time.monotonic()
        with pytest.raises(StoreUnavailableError) as info:
            _publish_then_promote(store, new_run_id(), _files(tmp_path, "k"))
        elapsed = time.monotonic() - start
    finally:
        server.stop()
    message = str(info.value)
    assert server.endpoint_url in message and "2 attempt(s)" in message and "running" in message
    assert TEST_AWS_ENV["AWS_SECRET_ACCESS_KEY"] not in message
    assert elapsed < 20, elapsed  # bounded: 2 attempts with 1 s timeouts, not minutes
    assert CHAMPION_KEY not in store.writes and not any(k.endswith("manifest.json") for k in store.writes)


def test_server_frozen_mid_publish_champion_unchanged(tmp_path, monkeypatch):
    """SIGSTOP the server between run-file uploads (it keeps its state), let the publish fail,
    SIGCONT it and check through a second client that the champion pointer is the old one and
    the half-published run has no manifest."""
    server = start_moto_server(log_dir=tmp_path)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        server.create_bucket("freeze")
        healthy = open_store("s3://freeze", **FAST)
        _publish_then_promote(healthy, new_run_id(), _files(tmp_path, "old"))
        other = _second_client(server.endpoint_url)
        before = other.get_object(Bucket="freeze", Key=CHAMPION_KEY)["Body"].read()
        store = _StopAfter(open_store("s3://freeze", **FAST), 3, server.freeze)
        run_id = new_run_id()
        start = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="failed after 2 attempt"):
            _publish_then_promote(store, run_id, _files(tmp_path, "new"))
        assert time.monotonic() - start < 20
        server.thaw()
        after = other.get_object(Bucket="freeze", Key=CHAMPION_KEY)["Body"].read()
        assert after == before
        keys = [o["Key"] for o in other.list_objects_v2(Bucket="freeze", Prefix=f"runs/{run_id}/").get("Contents", [])]
        assert f"runs/{run_id}/manifest.json" not in keys
        assert CHAMPION_KEY not in store.writes
    finally:
        server.stop()


def test_store_json_is_refused_over_its_cap_on_s3(s3_bucket):
    from boneflow.registry.publish import read_champion
    from boneflow.registry.verified import MAX_CHAMPION_BYTES

    store = open_store(f"s3://{s3_bucket}/capped")
    store.put_bytes("champion.json", b"{}" + b" " * (MAX_CHAMPION_BYTES - 2))
    assert read_champion(store)[0] == {}
    store.put_bytes("champion.json", b"{}" + b" " * (MAX_CHAMPION_BYTES - 1))
    with pytest.raises(StoreError, match="over the 65,536 bytes"):
        read_champion(store)


def test_an_invalid_bucket_name_is_refused_before_any_request(monkeypatch):
    from typer.testing import CliRunner

    from boneflow.cli.main import app as cli_app

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: any request would fail slowly
    with pytest.raises(StoreError, match="not a valid S3 bucket name"):
        open_store("s3://Bad_Bucket!!/x")
    result = CliRunner().invoke(cli_app, ["gc", "--store", "s3://Bad_Bucket!!", "--skip-work-dir"])
    assert (
        result.exit_code == 2
        and "not a valid S3 bucket name" in result.stderr
        and "Checking bucket" not in result.output
    )
