"""Keys are built only from validated ids; run ids sort by time and are unique."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from boneflow.store import InvalidKeyError, StoreError, open_store
from boneflow.store.keys import (
    CHAMPION_KEY,
    RUN_ID_RE,
    dataset_key,
    new_run_id,
    run_key,
    validate_key,
)

RUN = "20260101T000000Z-abc123"
FP = "0123456789abcdef"


def test_layout_matches_design():
    assert CHAMPION_KEY == "champion.json"
    assert run_key(RUN, "model.safetensors") == f"runs/{RUN}/model.safetensors"
    assert run_key(RUN, "checkpoints/epoch-0001.pt") == f"runs/{RUN}/checkpoints/epoch-0001.pt"
    assert dataset_key(FP, 256, "train_images.npy") == f"datasets/{FP}/256/train_images.npy"


@pytest.mark.parametrize(
    "run_id",
    [
        "",
        "..",
        "../x",
        "/abs",
        "20260101T000000Z",
        "20260101T000000Z-ABC123",
        "20260101T000000Z-abc12",
        "20260101T000000Z-abc123/..",
        "run1",
        "20260101T000000Z-abc123\\x",
    ],
)
def test_bad_run_ids_are_rejected(run_id):
    with pytest.raises(InvalidKeyError, match="run id"):
        run_key(run_id, "metrics.json")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        "../champion.json",
        "/etc/passwd",
        "a/../b",
        "a//b",
        "a\\b",
        ".hidden",
        "a/b/c",
        "./x",
        "x/",
        "bad|char",
        "tab\tname",
    ],
)
def test_bad_names_are_rejected(name):
    with pytest.raises(InvalidKeyError):
        run_key(RUN, name)


@pytest.mark.parametrize("fp", ["", "xyz", "ABCDEF0123", "0123456", "../0123456789", "a" * 65])
def test_bad_fingerprints_are_rejected(fp):
    with pytest.raises(InvalidKeyError, match="fingerprint"):
        dataset_key(fp, 256, "manifest.json")


@pytest.mark.parametrize("size", [0, -1, True, "256", 10**6])
def test_bad_sizes_are_rejected(size):
    with pytest.raises(InvalidKeyError):
        dataset_key(FP, size, "manifest.json")


def test_error_message_says_what_is_allowed():
    with pytest.raises(InvalidKeyError) as info:
        validate_key("runs/../../etc")
    assert "'..'" in str(info.value)


def test_run_ids_are_sortable_and_unique():
    t0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    ids = [new_run_id(t0 + timedelta(seconds=s)) for s in (0, 1, 61, 3600 * 24)]
    assert ids == sorted(ids)
    same_second = {new_run_id(t0) for _ in range(200)}
    assert len(same_second) == 200
    assert all(RUN_ID_RE.match(r) for r in same_second)
    assert ids[0].startswith("20260301T120000Z-")


def test_run_id_uses_utc():
    local = datetime(2026, 3, 1, 13, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert new_run_id(local).startswith("20260301T120000Z-")


def test_open_store_picks_by_scheme(tmp_path):
    assert type(open_store(str(tmp_path))).__name__ == "LocalStore"
    assert open_store(f"file://{tmp_path}").root == tmp_path.resolve()
    with pytest.raises(StoreError, match="unknown scheme 'gs'"):
        open_store("gs://bucket/x")
    with pytest.raises(StoreError, match="empty"):
        open_store("")
    with pytest.raises(StoreError, match="remote hosts"):
        open_store("file://server/share")
    with pytest.raises(StoreError, match="only apply to s3"):
        open_store(str(tmp_path), max_attempts=2)
