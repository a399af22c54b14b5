"""Leakage audit: copies of the same radiograph across train/val/test, from the duplicate groups
of grouping.py (README, "Data checks" and "Honest evaluation: duplicate groups and the split
policy"). A near-copy pair names the hash transform (validate._hashes) that brought it within
max_distance. The leak-free test subset is the test images whose group has no member in train
or val; `contamination` counts the other ones by kind. The threshold's measurement: README,
"Decisions worth knowing" (Leakage hash; scripts/measure_leakage.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from boneflow.duplicates.grouping import LINK_KINDS, DuplicateGroups, find_duplicate_groups, near_pairs
from boneflow.intake.layout import SPLITS
from boneflow.intake.validate import HASH_BITS, HASH_KIND, HASH_TRANSFORMS, ValidatedDataset
from boneflow.settings import LEAK_MAX_DISTANCE, GroupingSettings

DEFAULT_MAX_DISTANCE = LEAK_MAX_DISTANCE  # of HASH_BITS = 256; RetrainConfig.leak_max_distance defaults to it


@dataclass
class LeakageAudit:
    report: dict
    leakfree_test: list[str]  # relpaths of test images with no copy in train/val
    groups: DuplicateGroups | None = None  # duplicate groups over all kept images (not persisted)


def _rotated_pairs(validated: ValidatedDataset, groups: DuplicateGroups) -> list[dict]:
    recs, order = validated.records, {s: k for k, s in enumerate(SPLITS)}
    links = (sorted((recs[a], recs[b]), key=lambda r: order[r.split]) for a, b, k in groups.links if k == "rotated")
    return [
        _pair_row(ra, rb, distance=None, transform="turn (any angle)", kind="rotated")
        for ra, rb in links
        if ra.split != rb.split
    ]


def _pair_row(ra, rb, *, distance: int | None, transform: str, kind: str) -> dict:
    """One cross-split copy as the report lists it."""
    return {
        "a": ra.relpath,
        "b": rb.relpath,
        "split_a": ra.split,
        "split_b": rb.split,
        "same_label": ra.label == rb.label,
        "distance": distance,
        "transform": transform,
        "kind": kind,
    }


def _hash_pairs(
    validated: ValidatedDataset, sha: list[str], by_split: dict[str, list[int]], max_distance: int
) -> tuple[list[dict], dict[str, int]]:
    """Near and exact copies between each pair of splits (pHash Hamming distance), and their counts."""
    pairs, counts = [], {}
    for ai, split_a in enumerate(SPLITS):
        for split_b in SPLITS[ai + 1 :]:
            idx_a, idx_b = by_split[split_a], by_split[split_b]
            ii, jj, dd, tt = near_pairs(validated.hashes[idx_a], validated.hashes[idx_b], max_distance=max_distance)
            counts[f"{split_a}-{split_b}"] = int(len(ii))
            for i, j, d, t in zip(ii, jj, dd, tt):
                ra, rb = validated.records[idx_a[i]], validated.records[idx_b[j]]
                kind = "exact" if sha[idx_a[i]] == sha[idx_b[j]] else "near"
                pairs.append(_pair_row(ra, rb, distance=int(d), transform=HASH_TRANSFORMS[t], kind=kind))
    return pairs, counts


def mixed_label_groups(validated: ValidatedDataset, groups: DuplicateGroups, sha: list[str]) -> list[dict]:
    """Radiographs whose files carry both labels: {group id (as splits.json names it), files}.
    Evaluation leaves them out (a radiograph cannot be judged under two labels)."""
    recs = validated.records
    out = [
        {"group": min(sha[k] for k in idx)[:12], "files": sorted(recs[k].relpath for k in idx)}
        for idx in groups.members().values()
        if len({recs[k].label for k in idx}) > 1
    ]
    return sorted(out, key=lambda m: m["group"])


def audit_leakage(validated: ValidatedDataset, *, max_distance: int = DEFAULT_MAX_DISTANCE) -> LeakageAudit:
    """Group copies over the whole dataset and list cross-split copies; write
    `validated.workdir/leakage_report.json`."""
    settings = GroupingSettings(near_max_distance=max_distance)
    sha = [validated.file_hashes[r.relpath] for r in validated.records]
    groups = find_duplicate_groups(sha, validated.hashes, validated.thumbs, settings=settings)
    by_split = {s: [k for k, r in enumerate(validated.records) if r.split == s] for s in SPLITS}
    pairs, counts = _hash_pairs(validated, sha, by_split, max_distance)
    pairs.sort(key=lambda p: (p["distance"], p["a"], p["b"]))
    seen = {(p["a"], p["b"]) for p in pairs}
    rotated = [p for p in _rotated_pairs(validated, groups) if (p["a"], p["b"]) not in seen]
    counts["rotated_links"] = len(rotated)
    pairs += sorted(rotated, key=lambda p: (p["a"], p["b"]))
    test_paths = [validated.records[k].relpath for k in by_split["test"]]
    trainval_groups = {int(groups.group[k]) for s in ("train", "val") for k in by_split[s]}
    leaking = {validated.records[k].relpath for k in by_split["test"] if int(groups.group[k]) in trainval_groups}
    leakfree = [p for p in test_paths if p not in leaking]
    mixed = mixed_label_groups(validated, groups, sha)
    report = {
        "method": f"{HASH_KIND} ({HASH_BITS}-bit) of each kept image vs the identity, mirror and "
        "90/180/270-degree rotations of the other; Hamming distance. Plus byte-identical "
        "files and turned copies at any angle, mirrored or not (aligned thumbnail texture), grouped transitively",
        "hash": HASH_KIND,
        "hash_bits": HASH_BITS,
        "max_distance": max_distance,
        "fingerprint": validated.fingerprint,
        "counts": {
            "hashed": len(validated.records),
            "pairs": len(pairs),
            "pairs_by_splits": counts,
            "test": len(test_paths),
            "test_leaking": len(leaking),
            "test_clean": len(leakfree),
            "label_conflicts": sum(1 for p in pairs if not p["same_label"]),
            "groups": int(groups.group.max()) + 1 if len(sha) else 0,
            "distinct_files": len(set(sha)),
            "mixed_label_groups": len(mixed),
        },
        "grouping": {
            key: getattr(settings, key)
            for key in ("near_max_distance", "rotation_min_corr", "rotation_max_angle", "any_angle_candidates")
        },
        "contamination": contamination(validated, groups),
        "pairs": pairs,
        "leaking_test": sorted(leaking),
        "leakfree_test": leakfree,
        "mixed_label_groups": mixed,
    }
    (validated.workdir / "leakage_report.json").write_text(json.dumps(report, indent=2))
    return LeakageAudit(report=report, leakfree_test=leakfree, groups=groups)


def contamination(validated: ValidatedDataset, groups: DuplicateGroups) -> dict:
    """How many official test images are copies of train/val images, by the strongest link:
    exact (same bytes as a train/val file), near (joined by exact/near links only), rotated."""
    recs = validated.records
    sha = [validated.file_hashes[r.relpath] for r in recs]
    trainval_sha = {s for r, s in zip(recs, sha) if r.split != "test"}
    near_tv = {g for r, g in zip(recs, groups.near_group.tolist()) if r.split != "test"}
    any_tv = {g for r, g in zip(recs, groups.group.tolist()) if r.split != "test"}
    counts = dict.fromkeys(LINK_KINDS, 0)
    test = [i for i, r in enumerate(recs) if r.split == "test"]
    for i in test:
        if sha[i] in trainval_sha:
            counts["exact"] += 1
        elif groups.near_group[i] in near_tv:
            counts["near"] += 1
        elif groups.group[i] in any_tv:
            counts["rotated"] += 1
    leaking = sum(counts.values())
    clean_groups = {int(groups.group[i]) for i in test if groups.group[i] not in any_tv}
    return {
        "official_test": len(test),
        "copies_in_train_val": {**counts, "any": leaking},
        "leakfree": len(test) - leaking,
        "leakfree_radiographs": len(clean_groups),  # what the gate's min_gate_n counts
    }
