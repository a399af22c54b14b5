"""Packing: shapes, aspect pad, memmap reload, reuse and clear errors on damage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from boneflow.splits.pack import PackedDataError, load_packed, pack_dataset


@pytest.fixture
def packed(demo_validated, tmp_path):
    _, _, _, validated, audit = demo_validated
    return (
        pack_dataset(validated, audit, out_dir=tmp_path / "packed", split_policy="official", min_gate_n=0),
        validated,
        audit,
    )


def test_shapes_labels_and_splits(packed):
    pk, validated, audit = packed
    again = load_packed(pk.dir, verify=True)
    assert again.size == 64 and again.classes == ("not fractured", "fractured")
    assert again.fingerprint == validated.fingerprint
    total = 0
    for name in ("train", "val", "test"):
        split = again.split(name)
        assert isinstance(split.images, np.memmap) and split.images.dtype == np.uint8
        assert split.images.shape == (len(split.paths), 64, 64) and split.labels.shape == (len(split.paths),)
        assert all(p.startswith(name + "/") for p in split.paths)
        assert set(split.labels.tolist()) <= {0, 1}
        assert all((p.split("/")[1] == "fractured") == bool(y) for p, y in zip(split.paths, split.labels))
        total += len(split.paths)
    assert total == len(validated.records)
    assert again.split("test_clean").paths == sorted(audit.leakfree_test)
    assert again.split("official_test").paths == again.split("test").paths
    assert again.manifest["split_policy"]["used"] == "official"
    for f in ("manifest.json", "cleaning_report.json", "leakage_report.json", "splits.json"):
        assert (pk.dir / f).is_file()


def test_regrouped_pack_puts_no_copy_on_two_sides_and_lists_every_file(demo_validated, tmp_path):
    path, _, _, validated, audit = demo_validated
    pk = pack_dataset(validated, audit, out_dir=tmp_path / "regrouped", split_policy="regroup", min_gate_n=0)
    doc = json.loads((pk.dir / "splits.json").read_text())
    cleaning = json.loads((pk.dir / "cleaning_report.json").read_text())
    assert len(doc["files"]) == len(validated.records) + cleaning["counts"]["excluded"]
    group_splits: dict[str, set] = {}
    for entry in doc["files"].values():
        if entry["split"] in ("train", "val", "test"):
            group_splits.setdefault(entry["group"], set()).add(entry["split"])
    assert all(len(s) == 1 for s in group_splits.values())
    for name in ("train", "val", "test"):
        assert sorted(pk.split(name).paths) == sorted(p for p, e in doc["files"].items() if e["split"] == name)
    assert pk.split("test_clean").paths == pk.split("test").paths
    assert pk.manifest["split_policy"] == {
        "requested": "regroup",
        "used": "regroup",
        "reason": doc["reason"],
        "folds": 1,
    }


def test_packed_pixels_are_the_validation_decode(packed):
    pk, validated, _ = packed
    split = pk.split("val")
    rows = {r.relpath: r.row for r in validated.records}
    pixels = np.load(validated.pixels_path, mmap_mode="r")
    for k, path in enumerate(split.paths):
        assert np.array_equal(split.images[k], pixels[rows[path]])


def test_landscape_image_is_padded_top_and_bottom(packed):
    pk, validated, _ = packed
    from PIL import Image

    for split_name in ("train", "val"):
        split = pk.split(split_name)
        for k, path in enumerate(split.paths):
            with Image.open(validated.root / path) as im:
                w, h = im.size
            if w >= 1.4 * h:
                img = split.images[k]
                assert img[0].max() == 0 and img[-1].max() == 0  # black bands
                assert img[32].max() > 0
                return
    pytest.fail("no landscape image in the demo set")


def test_second_pack_reuses(packed):
    pk, validated, audit = packed
    mtime = (pk.dir / "train_images.npy").stat().st_mtime_ns
    again = pack_dataset(validated, audit, out_dir=pk.dir, split_policy="official", min_gate_n=0)
    assert (pk.dir / "train_images.npy").stat().st_mtime_ns == mtime
    assert again.manifest == pk.manifest


def test_missing_and_corrupt_files_are_clear_errors(packed):
    pk, _, _ = packed
    (pk.dir / "val_labels.npy").unlink()
    with pytest.raises(PackedDataError, match=r"val_labels.npy: missing"):
        load_packed(pk.dir)
    np.save(pk.dir / "val_labels.npy", np.zeros(3, dtype=np.int64))
    with pytest.raises(PackedDataError, match=r"manifest says"):
        load_packed(pk.dir)
    manifest = json.loads((pk.dir / "manifest.json").read_text())
    (pk.dir / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1}))
    with pytest.raises(PackedDataError, match=r"manifest.json: format_version 1, .* format 2 only; delete"):
        load_packed(pk.dir)
    (pk.dir / "manifest.json").write_text("{not json")
    with pytest.raises(PackedDataError, match=r"manifest.json: unreadable"):
        load_packed(pk.dir)
    (pk.dir / "manifest.json").unlink()
    with pytest.raises(PackedDataError, match=r"manifest.json: missing"):
        load_packed(pk.dir)


def test_manifest_lists_every_file_with_sha256(packed):
    pk, _, _ = packed
    manifest = json.loads((pk.dir / "manifest.json").read_text())
    on_disk = {p.name for p in pk.dir.iterdir() if p.name != "manifest.json"}
    assert set(manifest["files"]) == on_disk
    assert all(len(meta["sha256"]) == 64 for meta in manifest["files"].values())


def test_repacking_for_evaluation_reproduces_the_packed_images(packed):
    from boneflow.evaluate.scores import repack_for_evaluation

    packed, validated, _ = packed
    root = validated.root
    same = repack_for_evaluation(packed, root, packed.size, ("val", "test", "test_clean"))
    for name in ("val", "test", "test_clean"):
        assert np.array_equal(same.split(name).images, np.asarray(packed.split(name).images))
        assert np.array_equal(same.split(name).labels, packed.split(name).labels)
    other = repack_for_evaluation(packed, root, 48, ("test",))
    assert other.size == 48 and other.split("test").images.shape[1:] == (48, 48)


def test_a_model_is_scored_with_its_own_pack_and_crop_size(packed):
    # A champion trained at 48 px packs / 40 px crops, scored on this run's 64 px packs: its
    # probabilities must be those of its own preprocessing, not of this run's arrays.
    import torch

    from boneflow.evaluate.calibration import OperatingPoint
    from boneflow.evaluate.predict import predict_proba
    from boneflow.evaluate.scores import repack_for_evaluation, score_with_own_preprocessing
    from boneflow.train.model import build_model

    packed, validated, _ = packed
    torch.manual_seed(0)
    model = build_model(num_classes=2).eval()
    meta = {"preprocessing": {"pack_size": 48, "image_size": 40}}
    scores = score_with_own_preprocessing(model, meta, packed, validated.root)
    served = OperatingPoint.from_meta(meta).probability(scores["test"].margins)
    own = predict_proba(
        model, repack_for_evaluation(packed, validated.root, 48, ("test",)).split("test").images, image_size=40
    )
    naive = predict_proba(model, np.asarray(packed.split("test").images), image_size=40)
    assert np.allclose(served, own)
    assert not np.allclose(own, naive)  # the test can tell the two apart
