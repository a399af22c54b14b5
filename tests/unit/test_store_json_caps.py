"""Store JSON (champion.json, run manifests, dataset and checkpoint indexes) is read with a size
cap: an object over it is refused from its size, with an error naming it, before it is read."""

from __future__ import annotations

import json

import pytest

from boneflow.registry.publish import read_champion, read_manifest
from boneflow.registry.transfer import read_checkpoint_index
from boneflow.registry.verified import MAX_CHAMPION_BYTES, MAX_INDEX_BYTES
from boneflow.store import LocalStore, StoreError
from gc_helpers import run_ids


def padded_json(obj: dict, size: int) -> bytes:
    """`obj` as JSON, padded with spaces to exactly `size` bytes."""
    data = json.dumps(obj).encode()
    return data + b" " * (size - len(data))


@pytest.mark.parametrize("extra,ok", [(-1, True), (0, True), (1, False)])
def test_champion_json_cap(tmp_path, extra, ok):
    store = LocalStore(tmp_path)
    store.put_bytes("champion.json", padded_json({"run_id": "x"}, MAX_CHAMPION_BYTES + extra))
    if ok:
        assert read_champion(store)[0] == {"run_id": "x"}
    else:
        with pytest.raises(StoreError, match=r"'champion.json' .* 65,537 bytes, over the 65,536"):
            read_champion(store)


@pytest.mark.parametrize("extra,ok", [(0, True), (1, False)])
def test_manifest_and_index_caps(tmp_path, extra, ok):
    store = LocalStore(tmp_path)
    run_id = run_ids(1)[0]
    manifest = padded_json({"run_id": run_id, "files": {}}, MAX_INDEX_BYTES + extra)
    store.put_bytes(f"runs/{run_id}/manifest.json", manifest)
    store.put_bytes(f"runs/{run_id}/checkpoints/index.json", padded_json({"files": {}}, MAX_INDEX_BYTES + extra))
    if ok:
        assert read_manifest(store, run_id)["run_id"] == run_id and read_checkpoint_index(store, run_id) == {}
        return
    with pytest.raises(StoreError, match="manifest.json.* over the 4,194,304 bytes"):
        read_manifest(store, run_id)
    with pytest.raises(StoreError, match="index.json.* over the 4,194,304 bytes"):
        read_checkpoint_index(store, run_id)
