"""publish.py on a LocalStore: layout, manifest hashes, verified downloads, promotion,
datasets and checkpoints."""

from __future__ import annotations

import hashlib
import json
import threading

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
from boneflow.registry.transfer import fetch_checkpoints, fetch_dataset, upload_checkpoint, upload_dataset
from boneflow.splits.pack import PackedDataset
from boneflow.store import (
    IntegrityError,
    InvalidKeyError,
    LocalStore,
    ObjectNotFoundError,
    StoreError,
    new_run_id,
)
from boneflow.train.checkpoint import checkpoint_path, list_checkpoints

METRICS = {
    "splits": {
        "test_clean": {
            "n": 100,
            "accuracy": 0.93,
            "accuracy_ci95": [0.86, 0.97],
            "recall_fractured": 0.92,
            "auroc": 0.97,
            "ece": 0.03,
        }
    }
}


class RecordingStore(LocalStore):
    """Remembers the order of writes."""

    def __init__(self, root):
        super().__init__(root)
        self.writes: list[str] = []

    def put_bytes(self, key, data):
        self.writes.append(key)
        super().put_bytes(key, data)

    def put_file(self, key, path):
        self.writes.append(key)
        super().put_file(key, path)

    def put_if(self, key, data, *, etag):
        self.writes.append(key)
        return super().put_if(key, data, etag=etag)


@pytest.fixture
def store(tmp_path):
    return RecordingStore(tmp_path / "store")


def _run_files(tmp_path, tag="a"):
    model = tmp_path / f"model-{tag}.safetensors"
    model.write_bytes(hashlib.sha256(tag.encode()).digest() * 1000)
    return {
        "model.safetensors": model,
        "model.json": json.dumps({"architecture": "resnet18"}).encode(),
        "metrics.json": json.dumps(METRICS).encode(),
        "report.md": b"# report\n",
        "checkpoints/extra.txt": b"sub folder file",
    }


def _publish_and_promote(store, tmp_path, tag, expected_etag):
    run_id = new_run_id()
    manifest = publish_run(store, run_id, _run_files(tmp_path, tag))
    record = champion_record(
        run_id=run_id,
        manifest=manifest,
        metrics=METRICS,
        dataset_fingerprint="0123456789abcdef",
        config_fingerprint="fedcba9876543210",
    )
    return run_id, manifest, record


def test_publish_layout_and_manifest_hashes(store, tmp_path):
    run_id = new_run_id()
    files = _run_files(tmp_path)
    manifest = publish_run(store, run_id, files, code_version={"package_version": "t", "git_commit": None})
    keys = store.list(f"runs/{run_id}/")
    assert keys == sorted(f"runs/{run_id}/{n}" for n in [*files, "manifest.json"])
    assert store.writes[-1] == f"runs/{run_id}/manifest.json"  # manifest written last
    on_disk = read_manifest(store, run_id)
    assert on_disk == manifest and on_disk["code_version"]["package_version"] == "t"
    assert set(on_disk["files"]) == set(files)
    for name, entry in on_disk["files"].items():
        data = (store.root / "runs" / run_id / name).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert "created_at" in on_disk


def test_publish_validates_every_name_before_uploading(store, tmp_path):
    with pytest.raises(InvalidKeyError):
        publish_run(store, new_run_id(), {"ok.json": b"1", "../escape": b"2"})
    with pytest.raises(StoreError, match="reserved"):
        publish_run(store, new_run_id(), {"manifest.json": b"1"})
    with pytest.raises(StoreError, match="not a file"):
        publish_run(store, new_run_id(), {"model.safetensors": tmp_path / "missing"})
    assert store.writes == []


def test_fetch_verifies_and_detects_corruption(store, tmp_path):
    run_id = new_run_id()
    publish_run(store, run_id, _run_files(tmp_path))
    out = fetch_run_file(store, run_id, "model.safetensors", tmp_path / "dl" / "m.safetensors")
    assert out.read_bytes() == (tmp_path / "model-a.safetensors").read_bytes()
    assert fetch_run_file(store, run_id, "checkpoints/extra.txt", tmp_path / "dl").name == "extra.txt"
    # Corrupt the object behind the manifest's back: same size, one byte flipped.
    path = store.root / "runs" / run_id / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    dest = tmp_path / "dl2" / "m.safetensors"
    with pytest.raises(IntegrityError, match=f"runs/{run_id}/model.safetensors"):
        fetch_run_file(store, run_id, "model.safetensors", dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # bad bytes never land
    with pytest.raises(ObjectNotFoundError, match="not listed"):
        fetch_run_file(store, run_id, "roc.png", tmp_path)
    with pytest.raises(ObjectNotFoundError, match="never published"):
        fetch_run_file(store, new_run_id(), "model.safetensors", tmp_path)


def test_promote_first_then_replace_then_stale_loses(store, tmp_path):
    assert read_champion(store) is None
    run_a, _, rec_a = _publish_and_promote(store, tmp_path, "a", None)
    etag_a = promote(store, rec_a, expected_etag=None)
    assert store.writes[-1] == "champion.json"
    champ, etag = read_champion(store)
    assert champ["run_id"] == run_a and etag == etag_a
    assert set(champ) >= {
        "run_id",
        "model_sha256",
        "metrics",
        "dataset_fingerprint",
        "config_fingerprint",
        "published_at",
    }
    run_b, _, rec_b = _publish_and_promote(store, tmp_path, "b", etag_a)
    run_c, _, rec_c = _publish_and_promote(store, tmp_path, "c", etag_a)
    promote(store, rec_b, expected_etag=etag_a)
    with pytest.raises(ChampionConflictError, match=f"{run_c} was published but NOT promoted.*now points to {run_b}"):
        promote(store, rec_c, expected_etag=etag_a)
    assert read_champion(store)[0]["run_id"] == run_b
    assert read_manifest(store, run_c)["run_id"] == run_c  # loser stays published


def test_promote_refuses_incomplete_runs_and_bad_pointers(store, tmp_path):
    run_id, manifest, rec = _publish_and_promote(store, tmp_path, "a", None)
    with pytest.raises(ObjectNotFoundError, match="never published"):
        promote(store, dict(rec, run_id=new_run_id()), expected_etag=None)
    with pytest.raises(IntegrityError, match="model_sha256"):
        promote(store, dict(rec, model_sha256="0" * 64), expected_etag=None)
    with pytest.raises(StoreError, match="dataset_fingerprint"):
        promote(store, dict(rec, dataset_fingerprint=""), expected_etag=None)
    assert read_champion(store) is None


def test_concurrent_promotions_threads_exactly_one_wins(store, tmp_path):
    runs = [_publish_and_promote(store, tmp_path, str(i), None)[2] for i in range(6)]
    barrier = threading.Barrier(len(runs))
    outcome: dict[str, str] = {}

    def go(rec):
        barrier.wait()
        try:
            promote(store, rec, expected_etag=None)
            outcome[rec["run_id"]] = "won"
        except ChampionConflictError:
            outcome[rec["run_id"]] = "lost"

    threads = [threading.Thread(target=go, args=(r,)) for r in runs]
    [t.start() for t in threads]
    [t.join() for t in threads]
    winners = [r for r, o in outcome.items() if o == "won"]
    assert len(winners) == 1 and len(outcome) == 6
    assert read_champion(store)[0]["run_id"] == winners[0]


def test_dataset_upload_skip_and_verified_fetch(store, tmp_path):
    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / "manifest.json").write_text('{"size": 64}')
    (packed / "train_images.npy").write_bytes(b"\x01" * 5000)
    (packed / "train_labels.npy").write_bytes(b"\x00" * 80)
    fp = "ab" * 32
    dataset = PackedDataset(packed, 64, (), fp)
    first = upload_dataset(store, dataset)
    assert first["uploaded"] and set(first["files"]) == {"manifest.json", "train_images.npy", "train_labels.npy"}
    assert store.writes[-1] == f"datasets/{fp}/64/index.json"
    n_writes = len(store.writes)
    assert upload_dataset(store, dataset)["uploaded"] is False
    assert len(store.writes) == n_writes  # nothing re-uploaded
    dest = fetch_dataset(store, fp, 64, tmp_path / "fetched")
    assert (dest / "train_images.npy").read_bytes() == b"\x01" * 5000
    (store.root / "datasets" / fp / "64" / "train_labels.npy").write_bytes(b"\x01" * 80)
    with pytest.raises(IntegrityError, match="train_labels.npy"):
        fetch_dataset(store, fp, 64, tmp_path / "fetched2")
    with pytest.raises(ObjectNotFoundError, match="upload it"):
        fetch_dataset(store, "cd" * 32, 64, tmp_path / "x")
    # An interrupted upload (a file missing) is re-uploaded, not skipped.
    (store.root / "datasets" / fp / "64" / "train_images.npy").unlink()
    assert upload_dataset(store, dataset)["uploaded"] is True


def test_checkpoints_roundtrip_and_appear_in_manifest(store, tmp_path):
    run_id = new_run_id()
    assert fetch_checkpoints(store, run_id, tmp_path / "ck") == []
    for epoch in (1, 2, 3):
        ck = tmp_path / f"epoch-{epoch:04d}.pt"
        ck.write_bytes(bytes([epoch]) * 2000)
        assert upload_checkpoint(store, run_id, ck, keep=3) == f"runs/{run_id}/checkpoints/epoch-{epoch:04d}.pt"
    got = fetch_checkpoints(store, run_id, tmp_path / "ck")
    assert [p.name for p in got] == ["epoch-0001.pt", "epoch-0002.pt", "epoch-0003.pt"]
    assert got[2].read_bytes() == bytes([3]) * 2000
    latest = fetch_checkpoints(store, run_id, tmp_path / "ck2", latest_only=True)
    assert [p.name for p in latest] == ["epoch-0003.pt"]
    manifest = publish_run(store, run_id, {"metrics.json": b"{}"})
    assert {"checkpoints/epoch-0001.pt", "checkpoints/index.json", "metrics.json"} <= set(manifest["files"])
    assert manifest["files"]["checkpoints/epoch-0003.pt"]["sha256"] == hashlib.sha256(bytes([3]) * 2000).hexdigest()
    (store.root / "runs" / run_id / "checkpoints" / "epoch-0002.pt").write_bytes(b"junk")
    with pytest.raises(IntegrityError, match="epoch-0002.pt"):
        fetch_checkpoints(store, run_id, tmp_path / "ck3")


def test_same_data_packed_with_other_settings_replaces_the_stored_copy(store, tmp_path):
    # Same fingerprint and size, different bytes (e.g. another leakage threshold changed
    # test_clean): the stored copy must be replaced, not "found complete" by its sizes.
    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / "manifest.json").write_text('{"leak_max_distance": 4}')
    (packed / "test_clean_labels.npy").write_bytes(b"\x00" * 80)
    fp = "cd" * 32
    dataset = PackedDataset(packed, 64, (), fp)
    upload_dataset(store, dataset)
    (packed / "manifest.json").write_text('{"leak_max_distance": 9}')  # same length, new bytes
    assert upload_dataset(store, dataset)["uploaded"] is True
    fetched = fetch_dataset(store, fp, 64, tmp_path / "fetched")
    assert (fetched / "manifest.json").read_text() == '{"leak_max_distance": 9}'


def test_old_checkpoints_are_pruned_and_a_damaged_newest_falls_back(store, tmp_path):
    run_id = new_run_id()
    for epoch in (1, 2, 3, 4):
        ck = tmp_path / f"epoch-{epoch:04d}.pt"
        ck.write_bytes(bytes([epoch]) * 1000)
        upload_checkpoint(store, run_id, ck)  # keep=2 by default
    stored = sorted(k.rsplit("/", 1)[1] for k in store.list(f"runs/{run_id}/checkpoints/"))
    assert stored == ["epoch-0003.pt", "epoch-0004.pt", "index.json"]
    (store.root / "runs" / run_id / "checkpoints" / "epoch-0004.pt").write_bytes(b"half-written")
    resumed = fetch_checkpoints(store, run_id, tmp_path / "resume", latest_only=True)
    assert [p.name for p in resumed] == ["epoch-0003.pt"]
    assert resumed[0].read_bytes() == bytes([3]) * 1000


def test_stored_checkpoints_order_by_epoch_like_the_local_directory(store, tmp_path):
    # Past epoch 9999 the name grows a digit: text order would put epoch-10000 first.
    run_id, local = new_run_id(), tmp_path / "local"
    local.mkdir()
    for epoch in (9999, 10000):
        ck = local / checkpoint_path(local, epoch).name
        ck.write_bytes(bytes([epoch % 251]) * 100)
        upload_checkpoint(store, run_id, ck)
    assert [e for e, _ in list_checkpoints(local)] == [9999, 10000]
    fetched = fetch_checkpoints(store, run_id, tmp_path / "ck")
    assert [p.name for p in fetched] == ["epoch-9999.pt", "epoch-10000.pt"]
    latest = fetch_checkpoints(store, run_id, tmp_path / "ck2", latest_only=True)
    assert [p.name for p in latest] == ["epoch-10000.pt"]
    ck = local / "epoch-10001.pt"
    ck.write_bytes(b"x")
    upload_checkpoint(store, run_id, ck, keep=2)
    assert sorted(store.list(f"runs/{run_id}/checkpoints/")) == [
        f"runs/{run_id}/checkpoints/epoch-10000.pt",
        f"runs/{run_id}/checkpoints/epoch-10001.pt",
        f"runs/{run_id}/checkpoints/index.json",
    ]


def test_upload_refuses_a_file_that_is_not_a_checkpoint(store, tmp_path):
    for name in ("index.json", "best.pt", "epoch-1.pt"):
        path = tmp_path / name
        path.write_bytes(b"{}")
        with pytest.raises(StoreError, match="not a checkpoint file name"):
            upload_checkpoint(store, new_run_id(), path)
    assert store.writes == []
