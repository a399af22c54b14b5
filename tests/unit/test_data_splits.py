"""Split policy: whole duplicate groups per split, one file per byte-identical set, the auto
rule, contamination counts, splits.json listing every file once, and clear class errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from boneflow.duplicates.grouping import DuplicateGroups
from boneflow.duplicates.leakage import contamination
from boneflow.intake.validate import KeptRecord, ValidatedDataset
from boneflow.splits.plan import REGROUP_FRACTIONS, SplitError, plan_splits


def _dataset(rows: list[tuple[str, int, str, int, int, str]], excluded=()) -> tuple[ValidatedDataset, DuplicateGroups]:
    """rows: (split, label, sha, group, near_group, source). Paths follow the Kaggle layout."""
    records, hashes, groups, near = [], {}, [], []
    for k, (split, label, sha, g, ng, source) in enumerate(rows):
        rel = f"{split}/{'fractured' if label else 'not fractured'}/img_{k:04d}.jpg"
        records.append(KeptRecord(rel, split, label, k, source))
        hashes[rel] = sha
        groups.append(g)
        near.append(ng)
    validated = ValidatedDataset(
        root=Path("/nonexistent"),
        workdir=Path("/nonexistent"),
        pack_size=64,
        fingerprint="f" * 64,
        report={"excluded": list(excluded)},
        records=records,
        pixels_path=Path("/nonexistent"),
        hashes=np.zeros((len(rows), 5, 4), np.uint64),
        thumbs=np.zeros((len(rows), 64, 64), np.uint8),
        file_hashes=hashes,
    )
    dup = DuplicateGroups(group=np.array(groups), near_group=np.array(near), link_kind=[None] * len(rows), links=[])
    return validated, dup


def _big_pool(n_groups: int = 200, copies: int = 3) -> list[tuple]:
    """n_groups radiographs, each in `copies` files (one byte-identical pair + turned copies),
    spread over the official splits the way the Kaggle set spreads them."""
    rows = []
    splits = ("train", "train", "val", "test")
    for g in range(n_groups):
        label = g % 2
        source = "JPEG 224x224" if g % 3 else "PNG 1500x1600"
        rows.append((splits[g % 4], label, f"sha{g}", g, g, source))
        rows.append((splits[(g + 1) % 4], label, f"sha{g}", g, g, source))  # same bytes, other split
        for c in range(copies - 2):
            rows.append((splits[(g + 2 + c) % 4], label, f"sha{g}-rot{c}", g, 10_000 + g * 10 + c, "JPEG 224x224"))
    return rows


def test_regroup_keeps_whole_groups_on_one_side_and_one_file_per_byte_identical_set():
    validated, groups = _dataset(_big_pool())
    plan = plan_splits(validated, groups, policy="regroup", seed=0)
    split_of_group: dict[int, set] = {}
    for i, rec in enumerate(validated.records):
        entry = plan.files[rec.relpath]
        if entry["split"] == "duplicate":
            assert validated.file_hashes[entry["copy_of"]] == validated.file_hashes[rec.relpath]
            continue
        split_of_group.setdefault(int(groups.group[i]), set()).add(entry["split"])
    assert all(len(s) == 1 for s in split_of_group.values())
    kept = [e for e in plan.files.values() if e["split"] != "duplicate"]
    assert len(kept) == len({validated.file_hashes[r.relpath] for r in validated.records})
    shares = {s: sum(e["split"] == s for e in kept) / len(kept) for s in ("train", "val", "test")}
    assert shares["train"] == pytest.approx(0.7, abs=0.03)
    assert shares["val"] == pytest.approx(0.1, abs=0.03)
    assert shares["test"] == pytest.approx(0.2, abs=0.03)
    assert plan.members["test_clean"] == plan.members["test"]
    assert plan.used == "regroup" and plan.requested == "regroup"


@pytest.mark.parametrize("seed", range(5))
def test_regroup_stratifies_classes_and_sources_into_val_and_test(seed):
    """Within every stratum of (class, source) the radiographs go 70/10/20 to within one, so
    each split holds each source in the pool's proportion. In _big_pool a radiograph's source is
    that of its first file `sha{g}` (PNG originals for g % 3 == 0); its turned copy is a JPEG."""
    validated, groups = _dataset(_big_pool(300))
    plan = plan_splits(validated, groups, policy="regroup", seed=seed)
    split_of_group = {int(groups.group[i]): plan.files[r.relpath]["split"] for i, r in enumerate(validated.records)}
    per_stratum: dict[tuple[int, bool], Counter] = {}
    for g in range(300):
        per_stratum.setdefault((g % 2, g % 3 == 0), Counter())[split_of_group[g]] += 1
    assert len(per_stratum) == 4
    for stratum, counts in per_stratum.items():
        n = sum(counts.values())
        for split, share in REGROUP_FRACTIONS.items():
            assert abs(counts[split] - share * n) < 1, (stratum, split, dict(counts))
    kept = [r for r in validated.records if plan.files[r.relpath]["split"] != "duplicate"]
    pool_png = np.mean([r.source.startswith("PNG") for r in kept])
    for split in ("val", "test"):
        idx = plan.members[split]
        labels = [validated.records[i].label for i in idx]
        sources = [validated.records[i].source.startswith("PNG") for i in idx]
        assert np.mean(labels) == pytest.approx(0.5, abs=0.02)
        assert np.mean(sources) == pytest.approx(pool_png, abs=0.01)  # 1/6: PNG originals with their JPEG copies


def test_regroup_is_deterministic_and_depends_on_seed():
    validated, groups = _dataset(_big_pool())
    a = plan_splits(validated, groups, policy="regroup", seed=0)
    b = plan_splits(validated, groups, policy="regroup", seed=0)
    c = plan_splits(validated, groups, policy="regroup", seed=1)
    assert a.files == b.files
    assert a.files != c.files


def test_official_judges_only_test_images_without_a_copy_in_train_or_val():
    rows = [
        ("train", 0, "a", 0, 0, "s"),
        ("test", 0, "a", 0, 0, "s"),  # exact copy
        ("train", 1, "b", 1, 1, "s"),
        ("test", 1, "b2", 1, 1, "s"),  # near copy
        ("val", 1, "c", 2, 2, "s"),
        ("test", 1, "c2", 2, 99, "s"),  # rotated copy
        ("test", 0, "d", 3, 3, "s"),
        ("test", 0, "d", 3, 3, "s"),  # clean, twice the same bytes
        ("test", 1, "e", 4, 4, "s"),
        ("train", 1, "f", 5, 5, "s"),
        ("val", 0, "g", 6, 6, "s"),
        ("train", 0, "h", 7, 7, "s"),
        ("val", 1, "i", 8, 8, "s"),
    ]
    validated, groups = _dataset(rows)
    contam = contamination(validated, groups)
    assert contam == {
        "official_test": 6,
        "copies_in_train_val": {"exact": 1, "near": 1, "rotated": 1, "any": 3},
        "leakfree": 3,
        "leakfree_radiographs": 2,  # d (two files, one radiograph) and e
    }
    plan = plan_splits(validated, groups, policy="official", min_gate_n=0)
    clean = [validated.records[i].relpath for i in plan.members["test_clean"]]
    assert clean == [validated.records[6].relpath, validated.records[8].relpath]
    assert plan.files[validated.records[1].relpath] == {
        "split": "duplicate",
        "group": plan.files[validated.records[0].relpath]["group"],
        "copy_of": validated.records[0].relpath,
    }
    assert len(plan.members["official_test"]) == 6


@pytest.mark.parametrize("clean_test, expect", [(150, "official"), (40, "regroup")])
def test_auto_uses_official_only_when_its_leakfree_test_is_big_enough(clean_test, expect):
    rows = []
    for k in range(400):
        rows.append(("train", k % 2, f"t{k}", k, k, "s"))
    for k in range(40):
        rows.append(("val", k % 2, f"v{k}", 1000 + k, 1000 + k, "s"))
    for k in range(200):  # the first `clean_test` test images are clean, the rest copy train images
        g = 2000 + k if k < clean_test else k
        rows.append(("test", k % 2, f"x{k}", g, g, "s"))
    validated, groups = _dataset(rows)
    plan = plan_splits(validated, groups, policy="auto", min_gate_n=100)
    assert plan.used == expect
    assert str(clean_test) in plan.reason


def _copy_pairs_test(clean_files: int, *, total: int = 200):
    """400 train, 40 val, `total` test images; the first `clean_files` test images are leak-free
    and come in pairs of one radiograph (two files, one group), the rest copy train images."""
    rows = [("train", k % 2, f"t{k}", k, k, "s") for k in range(400)]
    rows += [("val", k % 2, f"v{k}", 1000 + k, 1000 + k, "s") for k in range(40)]
    for k in range(total):
        g = 2000 + k // 2 if k < clean_files else k
        rows.append(("test", (k // 2) % 2, f"x{k}", g, g, "s"))
    return _dataset(rows)


@pytest.mark.parametrize(("clean_files", "expect"), [(198, "regroup"), (200, "official"), (202, "official")])
def test_auto_counts_the_leakfree_test_in_radiographs_at_min_gate_n(clean_files, expect):
    """99, 100 and 101 leak-free radiographs against min_gate_n 100 (two files each)."""
    validated, groups = _copy_pairs_test(clean_files, total=202)
    plan = plan_splits(validated, groups, policy="auto", min_gate_n=100)
    assert plan.contamination["leakfree_radiographs"] == clean_files // 2
    assert plan.used == expect, plan.reason
    assert f"{clean_files // 2} radiographs" in plan.reason


@pytest.mark.parametrize(
    ("clean_files", "total", "expect"),
    [
        (98, 200, "regroup"),
        (99, 200, "regroup"),  # one file short of half
        (100, 200, "official"),  # exactly half
        (101, 200, "official"),
        (102, 200, "official"),
        (100, 201, "regroup"),  # an odd test: half is 100.5 images, 100 is short of it
        (101, 201, "official"),
    ],
)
def test_auto_needs_half_of_the_official_test_leakfree(clean_files, total, expect):
    validated, groups = _copy_pairs_test(clean_files, total=total)
    plan = plan_splits(validated, groups, policy="auto", min_gate_n=0)
    assert plan.contamination["leakfree"] == clean_files and plan.contamination["official_test"] == total
    assert plan.used == expect, plan.reason


def test_splits_json_lists_every_source_file_once_including_excluded():
    excluded = [{"path": "train/fractured/broken.jpg", "reason": "truncated", "detail": "cut short"}]
    validated, groups = _dataset(_big_pool(40), excluded)
    plan = plan_splits(validated, groups, policy="regroup")
    doc = plan.to_json()
    assert set(doc["files"]) == {r.relpath for r in validated.records} | {"train/fractured/broken.jpg"}
    assert doc["files"]["train/fractured/broken.jpg"]["split"] == "excluded"
    assert "truncated" in doc["files"]["train/fractured/broken.jpg"]["reason"]
    assert doc["policy"] == "regroup" and doc["reason"]
    assert sum(doc["counts"].values()) == len(doc["files"])


def test_a_split_without_a_class_stops_with_the_class_and_split_named():
    rows = (
        [("train", 0, f"a{k}", k, k, "s") for k in range(30)]
        + [("val", k % 2, f"b{k}", 100 + k, 100 + k, "s") for k in range(10)]
        + [("test", k % 2, f"c{k}", 200 + k, 200 + k, "s") for k in range(10)]
    )
    validated, groups = _dataset(rows)
    with pytest.raises(SplitError, match="'train' has no 'fractured'"):
        plan_splits(validated, groups, policy="official", min_gate_n=0)


def test_unknown_policy_is_refused():
    validated, groups = _dataset(_big_pool(10))
    with pytest.raises(SplitError, match="split_policy 'random'"):
        plan_splits(validated, groups, policy="random")
