"""`boneflow gc` on the real S3 store (moto's standalone server over HTTP): exactly the right
objects go, incomplete multipart uploads and stale probes are aborted, the champion and
everything younger than the grace period stay."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from boneflow.cli.main import app
from boneflow.registry.gc import collect_garbage
from boneflow.store import open_store
from gc_helpers import add_checkpoints, keys_of, publish, run_ids

pytestmark = pytest.mark.integration

# S3 LastModified cannot be set, so for the CLI "old" means written a few seconds before gc runs
# and the grace period is shrunk to match (0.0005 h = 1.8 s).
GRACE_HOURS = "0.0005"


def _gc(url: str, *extra: str) -> dict:
    result = CliRunner().invoke(
        app, ["gc", "--store", url, "--skip-work-dir", "--keep-runs", "1", "--grace-hours", GRACE_HOURS, *extra]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_gc_on_s3_deletes_exactly_the_right_objects(s3_server, s3_bucket, tmp_path):
    store = open_store(f"s3://{s3_bucket}/boneflow")
    client = s3_server["server"].client()
    champion, old_a, old_b, abandoned, young_e, young_f = run_ids(6)
    for run_id in (champion, old_a, old_b, abandoned):
        add_checkpoints(store, run_id, tmp_path)
    publish(store, champion, promote_it=True)
    publish(store, old_a)
    publish(store, old_b)
    killed_upload = client.create_multipart_upload(Bucket=s3_bucket, Key=f"boneflow/runs/{old_a}/big.pt")
    store.put_bytes("boneflow-probe/0123456789abcdef", b"1")  # a probe a killed promotion left
    # S3 LastModified has whole seconds: >1 s on each side of `split` keeps old and young apart.
    time.sleep(1.1)
    split = datetime.now(UTC)
    time.sleep(1.1)
    add_checkpoints(store, young_e, tmp_path)  # a run still training: no manifest yet
    publish(store, young_f)
    before = set(store.list())
    # Judged at `split + grace`: everything before split is exactly old enough, after it young,
    # however long the calls below take.
    grace = timedelta(hours=24)
    expected = (
        keys_of(store, old_a)
        | keys_of(store, abandoned)
        | keys_of(store, old_b)  # newest 1 finished run is young_f, so old_b goes whole
        | {f"runs/{old_a}/big.pt#upload={killed_upload['UploadId']}", "boneflow-probe/0123456789abcdef"}
    )

    dry = collect_garbage(store, work_dir=None, keep_runs=1, grace=grace, dry_run=True, now=split + grace)
    assert {i["key"] for i in dry["store_objects"]["would_delete"]} == expected
    assert set(store.list()) == before and store.temp_objects()

    report = collect_garbage(store, work_dir=None, keep_runs=1, grace=grace, now=split + grace)
    deleted = {i["key"] for i in report["store_objects"]["deleted"]}
    assert deleted == expected
    assert set(store.list()) == before - deleted
    assert store.temp_objects() == []
    assert not client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    assert report["kept_runs"] == {
        champion: "champion",
        young_e: "younger than the grace period (may still be running)",
        young_f: "younger than the grace period (may still be running)",
    }
    assert keys_of(store, champion) == {k for k in before if k.startswith(f"runs/{champion}/")}
    assert store.size("champion.json") is not None


def test_checkpoints_of_the_newest_finished_runs_go_their_model_stays(s3_server, s3_bucket, tmp_path):
    url = f"s3://{s3_bucket}/p"
    store = open_store(url)
    champion, kept = run_ids(2)
    publish(store, champion, promote_it=True)
    add_checkpoints(store, kept, tmp_path)
    publish(store, kept)
    time.sleep(2.5)
    report = _gc(url)
    assert {i["key"] for i in report["store_objects"]["deleted"]} == {
        f"runs/{kept}/checkpoints/epoch-0001.pt",
        f"runs/{kept}/checkpoints/epoch-0002.pt",
        f"runs/{kept}/checkpoints/index.json",
    }
    assert {k.rsplit("/", 1)[1] for k in keys_of(store, kept)} == {
        "manifest.json",
        "model.safetensors",
        "model.json",
        "metrics.json",
        "report.md",
    }


def test_a_dot_dot_key_is_skipped_and_reported_never_deleted_or_fatal(s3_server, s3_bucket, tmp_path):
    """`runs/<id>/../../champion.json` is a plain S3 key, but a path with `..` in it: gc skips it
    (and deletes neither it nor what it seems to name), collects the run around it manifest
    last, aborts the multipart uploads, and a second gc finds everything done."""
    url = f"s3://{s3_bucket}/bf"
    store = open_store(url)
    client = s3_server["server"].client()
    champion, old = run_ids(2)
    publish(store, champion, promote_it=True)
    add_checkpoints(store, old, tmp_path)
    publish(store, old)
    odd = f"bf/runs/{old}/../../champion.json"
    client.put_object(Bucket=s3_bucket, Key=odd, Body=b'{"run_id": "planted"}')
    client.put_object(Bucket=s3_bucket, Key="bf/runs/", Body=b"")  # a console's folder marker
    upload = client.create_multipart_upload(Bucket=s3_bucket, Key=f"bf/runs/{old}/big.pt")
    champion_before = client.get_object(Bucket=s3_bucket, Key="bf/champion.json")["Body"].read()
    time.sleep(2.5)
    report = _gc(url, "--keep-runs", "0")
    skipped = {i["key"]: i["reason"] for i in report["store_objects"]["skipped"]}
    assert (
        set(skipped) == {f"runs/{old}/../../champion.json", "runs/"}
        and "'..'" in skipped[f"runs/{old}/../../champion.json"]
    )
    deleted = [i["key"] for i in report["store_objects"]["deleted"]]
    run_objects = [k for k in deleted if "#upload=" not in k]
    assert run_objects[-1] == f"runs/{old}/manifest.json"  # the manifest goes after the run's other objects
    assert f"runs/{old}/big.pt#upload={upload['UploadId']}" in deleted
    assert not keys_of(store, old) and keys_of(store, champion)
    assert client.get_object(Bucket=s3_bucket, Key=odd)["Body"].read() == b'{"run_id": "planted"}'
    assert client.get_object(Bucket=s3_bucket, Key="bf/champion.json")["Body"].read() == champion_before
    assert not client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")
    again = _gc(url, "--keep-runs", "0")
    assert again["store_objects"]["deleted"] == [] and len(again["store_objects"]["skipped"]) == 2
