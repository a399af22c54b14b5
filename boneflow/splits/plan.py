"""Split policy (README, "Honest evaluation": `official`, `regroup`, `auto`, and what
`splits.json` lists): which kept image trains, validates or tests, with whole duplicate groups
on one side of every split boundary. Under `regroup` with `folds` > 1 every pool file also gets a
cross-fitting fold (README, "Cross-fitting"); the group id it hashes changes only when the
smallest sha256 of the group's files does.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import get_args

from boneflow.duplicates.grouping import DuplicateGroups, exact_links
from boneflow.duplicates.leakage import contamination
from boneflow.errors import BoneflowError
from boneflow.intake.layout import CLASSES
from boneflow.intake.validate import ValidatedDataset
from boneflow.settings import DataSettings, GatePolicy, SplitPolicy

POLICIES = get_args(SplitPolicy)
REGROUP_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
TRAINING_SPLITS = ("train", "val")  # each must hold both classes; a thin test is the gate's call


class SplitError(BoneflowError):
    """A split cannot be used: a class is missing from it, or the policy is unknown."""


@dataclass(frozen=True)
class SplitPlan:
    requested: str
    used: str
    reason: str
    members: dict[str, list[int]]  # packed split name -> record indices
    files: dict[str, dict]  # relpath -> {"split", "group", "fold"?, "copy_of"?, "reason"?}
    contamination: dict = field(default_factory=dict)
    folds: int = 1  # cross-fitting folds (1: the single split)

    def to_json(self) -> dict:
        return {
            "policy": self.used,
            "requested": self.requested,
            "reason": self.reason,
            "counts": dict(Counter(entry["split"] for entry in self.files.values())),
            "folds": self.folds,
            "fold_balance": fold_balance(self.files),
            "files": self.files,
        }

    def summary(self) -> dict:
        return {"requested": self.requested, "used": self.used, "reason": self.reason, "folds": self.folds}


def fold_of(group_id: str, folds: int, *, seed: int = 0) -> int:
    """The cross-fitting fold of a radiograph: a hash of its group id and the seed only."""
    digest = hashlib.sha256(f"fold:{seed}:{group_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % folds


def fold_balance(files: dict[str, dict]) -> dict | None:
    """{fold: {class label: radiographs}} over the files that carry a fold; None without folds."""
    seen: dict[str, dict[str, set]] = {}
    for entry in files.values():
        if entry.get("fold") is None:
            continue
        by_label = seen.setdefault(str(entry["fold"]), {})
        by_label.setdefault(str(entry.get("label")), set()).add(entry["group"])
    return {f: {label: len(groups) for label, groups in sorted(c.items())} for f, c in sorted(seen.items())} or None


def _group_ids(validated: ValidatedDataset, groups: DuplicateGroups) -> list[str]:
    """A content-based id per group (the smallest sha256 of its files), stable across renames."""
    smallest: dict[int, str] = {}
    for rec, g in zip(validated.records, groups.group.tolist()):
        sha = validated.file_hashes[rec.relpath]
        smallest[g] = min(sha, smallest.get(g, sha))
    return [smallest[g][:12] for g in groups.group.tolist()]


def _first_of_each_file(validated: ValidatedDataset) -> tuple[list[int], dict[int, int]]:
    """Record indices that are the first file of their byte-identical set, and dupe -> first."""
    keep, links = exact_links([validated.file_hashes[rec.relpath] for rec in validated.records])
    return keep, {i: first for i, first, _ in links}


def _official(validated: ValidatedDataset, groups: DuplicateGroups) -> tuple[dict, dict]:
    recs = validated.records
    _, copy_of = _first_of_each_file(validated)
    rep_in_trainval: dict[int, int] = {}  # group -> its first train/val record
    for i, r in enumerate(recs):
        if r.split != "test":
            rep_in_trainval.setdefault(int(groups.group[i]), i)
    members = {s: [i for i, r in enumerate(recs) if r.split == s] for s in ("train", "val", "test")}
    # A test image outside test_clean is a copy: of another file's bytes, or of a train/val image.
    dupes = {
        i: copy_of[i] if i in copy_of else rep_in_trainval[int(groups.group[i])]
        for i in members["test"]
        if i in copy_of or int(groups.group[i]) in rep_in_trainval
    }
    members["test_clean"] = [i for i in members["test"] if i not in dupes]
    split_of = {i: "duplicate" if i in dupes else r.split for i, r in enumerate(recs)}
    return members, {"split_of": split_of, "copy_of": dupes}


def _stratum(validated: ValidatedDataset, idx: list[int]) -> tuple[int, str]:
    """(label, source) of a group whose files share one label (_regroup sets mixed ones aside)."""
    first = validated.records[idx[0]]
    return first.label, "224x224" if first.source.endswith(" 224x224") else first.source.split(" ")[0]


def _regroup(validated: ValidatedDataset, groups: DuplicateGroups, gids: list[str], *, seed: int) -> tuple[dict, dict]:
    recs = validated.records
    keep, copy_of = _first_of_each_file(validated)
    by_group: dict[int, list[int]] = {}
    for i in keep:
        by_group.setdefault(int(groups.group[i]), []).append(i)
    strata: dict[tuple, list[int]] = {}
    conflicted = []
    for g, idx in by_group.items():
        if len({recs[i].label for i in idx}) > 1:
            conflicted.append(g)  # one radiograph under both labels: label noise trains, never judges
            continue
        strata.setdefault(_stratum(validated, idx), []).append(g)
    split_of: dict[int, str] = {i: "duplicate" for i in copy_of}
    for g in conflicted:
        split_of.update(dict.fromkeys(by_group[g], "train"))
    salt = f"{validated.fingerprint}:{seed}"
    for key in sorted(strata):
        order = sorted(strata[key], key=lambda g: hashlib.sha256(f"{salt}:{gids[by_group[g][0]]}".encode()).hexdigest())
        assigned = dict.fromkeys(REGROUP_FRACTIONS, 0)
        for g in order:
            size = len(by_group[g])
            total = sum(assigned.values()) + size
            # the split furthest below its share takes the whole group
            split = max(REGROUP_FRACTIONS, key=lambda s: REGROUP_FRACTIONS[s] * total - assigned[s])
            assigned[split] += size
            split_of.update(dict.fromkeys(by_group[g], split))
    members = {s: sorted(i for i, sp in split_of.items() if sp == s) for s in REGROUP_FRACTIONS}
    members["test_clean"] = list(members["test"])
    return members, {"split_of": split_of, "copy_of": copy_of, "conflicted_groups": len(conflicted)}


def _choose(requested: str, contam: dict, min_gate_n: int) -> tuple[str, str]:
    clean, total = contam["leakfree"], contam["official_test"]
    radiographs = contam.get("leakfree_radiographs", clean)
    share = f"{contam['copies_in_train_val']['any']} of {total} official test images are copies of train/val images"
    if requested == "official":
        return "official", f"requested; {share}, {clean} leak-free remain ({radiographs} radiographs)"
    if requested == "regroup":
        return "regroup", f"requested; {share}"
    if radiographs >= min_gate_n and clean * 2 >= total:
        return (
            "official",
            f"{share}; the {clean} leak-free test images ({radiographs} radiographs) hold >= min_gate_n "
            f"({min_gate_n}) radiographs and are at least half of the official test",
        )
    return "regroup", (
        f"{share}; only {clean} leak-free remain, {radiographs} radiographs (need >= {min_gate_n} radiographs "
        f"and at least half of {total} images), so whole duplicate groups were re-split 70/10/20"
    )


def plan_splits(
    validated: ValidatedDataset,
    groups: DuplicateGroups,
    *,
    policy: str = DataSettings.split_policy,
    min_gate_n: int = GatePolicy.min_n,
    seed: int = 0,
    folds: int = 1,
) -> SplitPlan:
    """Assign every kept image (and list every excluded file) under `policy`; with `folds` > 1
    under `regroup`, also each pool file's cross-fitting fold."""
    if policy not in POLICIES:
        raise SplitError(f"split_policy {policy!r} is not one of {', '.join(POLICIES)}")
    contam = contamination(validated, groups)
    used, reason = _choose(policy, contam, min_gate_n)
    gids = _group_ids(validated, groups)
    if used == "official":
        members, detail = _official(validated, groups)
    else:
        members, detail = _regroup(validated, groups, gids, seed=seed)
    members["official_test"] = [i for i, r in enumerate(validated.records) if r.split == "test"]
    recs = validated.records
    files: dict[str, dict] = {}
    crossfit = folds > 1 and used == "regroup"
    for i, rec in enumerate(recs):
        entry = {"split": detail["split_of"][i], "group": gids[i]}
        if crossfit and entry["split"] in REGROUP_FRACTIONS:
            entry["fold"] = fold_of(gids[i], folds, seed=seed)
            entry["label"] = rec.label
        if i in detail["copy_of"]:
            entry["copy_of"] = recs[detail["copy_of"][i]].relpath
        files[rec.relpath] = entry
    for ex in validated.report.get("excluded", []):
        files[ex["path"]] = {
            "split": "excluded",
            "group": None,
            "reason": f"{ex['reason']}: {ex.get('detail', '')}".strip(": "),
        }
    check_classes_present(validated, members)
    return SplitPlan(policy, used, reason, members, dict(sorted(files.items())), contam, folds if crossfit else 1)


def check_classes_present(validated: ValidatedDataset, members: dict[str, list[int]]) -> None:
    """Stop before training when a split the run needs lacks a class."""
    for split in TRAINING_SPLITS:
        labels = {validated.records[i].label for i in members.get(split, [])}
        for label, name in enumerate(CLASSES):
            if label not in labels:
                raise SplitError(
                    f"split {split!r} has no {name!r} images after splitting "
                    f"({len(members.get(split, []))} images in it); add {name!r} "
                    f"images to the dataset or check its class folders"
                )
