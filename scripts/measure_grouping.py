"""Measure duplicate grouping: recall of rotated copies, false links, and time.

    python scripts/measure_grouping.py --data-dir ../shared/data/kaggle-bone-sample  # or a demo-data set
    python scripts/measure_grouping.py --data-dir DIR [--plant-turns 60] [--chain-depth 3] [--small-angles-only]
        [--scale 5] [--repeat 3]

The truth (README, "Honest evaluation: duplicate groups and the split policy", which has the
figures): on the Kaggle sample the `N-rotated...` families of its file names, used here only as
a measuring stick, where a false link joins files of two families; on a demo set planted.json:
every planted copy (near, byte-identical, rotated families) is joined with its original, every
other image stands alone, and a false link is any pair of distinct files in one group that the
truth keeps apart. Pairs are counted over distinct files (one per byte-identical set).

`--plant-turns K` adds K large-angle copies of distinct images, made as demo-data makes its own
but from wider turns (2-3 turns of one direction summing to 45-180 degrees, each on an expanded
canvas squashed to 224 x 224 and saved as JPEG, every third copy mirrored first). A copy is found
when it lands in its source's group; a false merge is two groups of the unplanted set joined
through the copies. `--chain-depth D` (Kaggle sample) keeps of the named families only the files
turned exactly D times, and every file outside them.

`--scale N` times grouping on N tiles of the decoded set (`tiles`); tiles link to each other
(any-angle and reused perceptual hashes), so read only the time from a scaled run. Prints one
JSON object, with the machine's load average (timings on a shared machine vary with it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics.cluster import pair_confusion_matrix

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boneflow.duplicates.grouping import find_duplicate_groups  # noqa: E402
from boneflow.intake.thumbnails import group_thumbnail  # noqa: E402
from boneflow.intake.validate import validate_dataset  # noqa: E402
from boneflow.settings import GroupingSettings  # noqa: E402

_FAMILY = re.compile(r"^(?P<base>.+?)-rotated")


def name_families(relpaths: list[str]) -> dict[int, str]:
    """Record index → family key ("<class>/<base>") for `N-rotated...` files."""
    out = {}
    for i, rel in enumerate(relpaths):
        cls, name = rel.split("/")[-2:]
        m = _FAMILY.match(name)
        if m:
            out[i] = f"{cls}/{m.group('base')}"
    return out


def _turns(relpath: str) -> int:
    """How many `-rotatedK` turns a file name records (0 outside the named families)."""
    return len(re.findall(r"-rotated\d+", relpath.split("/")[-1]))


def planted_truth(relpaths: list[str], data_dir: Path) -> tuple[dict[int, str], dict[int, str]]:
    """(rotated family of each family member, truth group of every record) from planted.json."""
    planted = json.loads((data_dir / "planted.json").read_text())
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    def join(x: str, y: str) -> None:
        parent[root(x)] = root(y)

    for c in planted.get("copies", []):
        join(c["copy"], c["original"])
    for d in planted.get("duplicates", []):
        join(d["copy"], d["of"])
    families = {}
    for fam in planted.get("rotated_families", []) + planted.get("turned_families", []):
        for member in fam["members"]:
            join(member, fam["base"])
            families[member] = fam["base"]
    index = {rel: i for i, rel in enumerate(relpaths)}
    return ({index[m]: b for m, b in families.items() if m in index}, {i: root(rel) for i, rel in enumerate(relpaths)})


def pair_counts(groups: np.ndarray, truth: dict[int, str], sha: list[str]) -> tuple[int, int, int]:
    """(pairs the truth joins, of those the grouping joins too, pairs the grouping joins that the
    truth keeps apart) over the distinct files among the truth's records."""
    first: dict[str, int] = {}
    for i in sorted(truth):
        first.setdefault(sha[i], i)
    idx = list(first.values())
    if not idx:
        return 0, 0, 0
    (_, false), (missed, both) = pair_confusion_matrix([truth[i] for i in idx], groups[idx]) // 2
    return int(missed + both), int(both), int(false)


def score(groups: np.ndarray, families: dict[int, str], sha: list[str], everyone: dict[int, str] | None = None) -> dict:
    """Rotated-pair recall within families; false links across families (or, given the truth
    group of every record, across truth groups over all distinct files)."""
    pos, hit, _ = pair_counts(groups, families, sha)
    truth = everyone if everyone is not None else families
    joined, _, false = pair_counts(groups, truth, sha)
    n = len({sha[i] for i in truth})
    neg = n * (n - 1) // 2 - joined
    return {
        "rotated_pairs": pos,
        "rotated_pair_recall": round(hit / pos, 4) if pos else None,
        "pairs_kept_apart_by_truth": neg,
        "false_links": false,
        "false_link_rate": false / neg if neg else None,
    }


def families_split(groups: np.ndarray, families: dict[int, str]) -> tuple[int, int]:
    """(families, of those the ones whose members fall into more than one group)."""
    seen: dict[str, set[int]] = {}
    for i, fam in families.items():
        seen.setdefault(fam, set()).add(int(groups[i]))
    return len(seen), sum(len(g) > 1 for g in seen.values())


def planted_turns_score(sha, hashes, thumbs, root: Path, rel: list[str], k: int, settings, base_groups) -> dict:
    """Group the set plus k large-angle copies of distinct images (module docstring)."""
    import math

    from boneflow.demo.copies import turned_copy
    from boneflow.intake.decode import decode_xray
    from boneflow.intake.validate import _hashes

    rng = np.random.default_rng(0)
    first: dict[str, int] = {}
    for i, s in enumerate(sha):
        first.setdefault(s, i)
    picks = rng.choice(sorted(first.values()), size=min(k, len(first)), replace=False)
    rows = []
    for c, i in enumerate(picks.tolist()):
        total = float(rng.uniform(45, 180)) * float(rng.choice([-1, 1]))
        angles = [round(float(total * w), 1) for w in rng.dirichlet(np.ones(int(rng.integers(2, 4))))]
        data = turned_copy((root / rel[i]).read_bytes(), angles, mirrored=c % 3 == 0)
        _, grey, _ = decode_xray(data, 256)
        scale = math.prod(1 / (abs(math.cos(math.radians(a))) + abs(math.sin(math.radians(a)))) for a in angles)
        desc = f"{angles} mirrored={c % 3 == 0} content scale {scale:.2f}"
        rows.append((hashlib.sha256(data).hexdigest(), _hashes(grey), group_thumbnail(grey), i, desc))
    p_sha, p_hashes, p_thumbs, src, desc = zip(*rows)
    src = np.array(src)
    n = len(sha)
    groups = find_duplicate_groups(
        sha + list(p_sha), np.concatenate([hashes, p_hashes]), np.concatenate([thumbs, p_thumbs]), settings=settings
    ).group
    found = groups[n:] == groups[src]
    # Each unplanted group that the copies joined to others adds one (new group, old group) pair.
    merged = set(zip(groups[:n].tolist(), base_groups.tolist()))
    return {
        "planted": len(src),
        "found": int(found.sum()),
        "false_merges": len(merged) - len({g for g, _ in merged}),
        "missed": [f"{rel[src[j]]}: {desc[j]}" for j in np.flatnonzero(~found).tolist()],
    }


def tiles(thumbs: np.ndarray, reps: int) -> np.ndarray:
    """reps tiles of the thumbnails, tile k turned by k*90 degrees (k mod 4), mirrored from k=4."""
    out = []
    for k in range(reps):
        t = np.rot90(thumbs, k % 4, axes=(1, 2))
        out.append(t[:, :, ::-1] if k % 8 >= 4 else t)
    return np.ascontiguousarray(np.concatenate(out))


def _timed(fn, repeat: int):
    """(fn(), least wall time over `repeat` calls, this process's CPU time (all threads) in that
    call): on a shared machine the least is the cost, and the CPU time shows how much of the wall
    time was waiting for a core."""
    best, cpu = float("inf"), 0.0
    for _ in range(max(1, repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = time.perf_counter() - t0
        if wall < best:
            best, cpu = wall, time.process_time() - c0
    return out, (best, cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--scale", type=int, default=1, help="also time grouping on N tiles of the decoded set")
    ap.add_argument("--repeat", type=int, default=1, help="time each grouping N times; the least is reported")
    ap.add_argument("--plant-turns", type=int, default=0, help="add K large-angle copies of the set's images")
    ap.add_argument("--chain-depth", type=int, default=0, help="keep only family files turned exactly D times")
    ap.add_argument(
        "--small-angles-only", action="store_true", help="no any-angle candidates (the grouping before them)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        validated = validate_dataset(args.data_dir, workdir=Path(tmp), pack_size=256)
        t_validate = time.perf_counter() - t0
    if validated.thumbs is None:
        sys.exit(f"{args.data_dir}: validation returned no grouping thumbnails; nothing to measure")
    thumbs, hashes = validated.thumbs, validated.hashes
    rel = [r.relpath for r in validated.records]
    if args.chain_depth:
        keep = [i for i, r in enumerate(rel) if _turns(r) in (0, args.chain_depth)]
        rel, thumbs, hashes = [rel[i] for i in keep], thumbs[keep], hashes[keep]
    sha = [validated.file_hashes[r] for r in rel]
    planted = (args.data_dir / "planted.json").is_file()
    families, everyone = planted_truth(rel, args.data_dir) if planted else (name_families(rel), None)
    settings = GroupingSettings(any_angle_candidates=0) if args.small_angles_only else GroupingSettings()
    t0 = time.perf_counter()
    import torch  # noqa: F401  (imported once per process by the audit; timed on its own)

    t_import = time.perf_counter() - t0
    groups, t_group = _timed(lambda: find_duplicate_groups(sha, hashes, thumbs, settings=settings), args.repeat)
    result = {
        "data_dir": str(args.data_dir),
        "any_angle_candidates": settings.any_angle_candidates,
        "images": len(rel),
        "distinct_files": len(set(sha)),
        "groups": int(groups.group.max() + 1) if len(rel) else 0,
        "links": {k: sum(1 for *_, kind in groups.links if kind == k) for k in ("exact", "near", "rotated")},
        "truth": "planted.json" if planted else "file names (N-rotated... families)",
        "chain_depth": args.chain_depth or None,
        **score(groups.group, families, sha, everyone),
        "families": dict(zip(("count", "split_into_several_groups"), families_split(groups.group, families))),
        "seconds": {
            "validate": round(t_validate, 2),
            "group": round(t_group[0], 2),
            "group_cpu": round(t_group[1], 2),
            "torch_import": round(t_import, 2),
        },
    }
    if args.plant_turns:
        result["planted_turns"] = planted_turns_score(
            sha, hashes, thumbs, validated.root, rel, args.plant_turns, settings, groups.group
        )
    if args.scale > 1:
        big_sha = [f"{s}-{k}" for k in range(args.scale) for s in sha]
        big_hashes = np.concatenate([hashes] * args.scale)
        big_thumbs = tiles(thumbs, args.scale)
        _, t_big = _timed(
            lambda: find_duplicate_groups(big_sha, big_hashes, big_thumbs, settings=settings), args.repeat
        )
        result["scaled"] = {
            "images": len(big_sha),
            "distinct_files": len(set(big_sha)),
            "group_seconds": round(t_big[0], 2),
            "group_cpu_seconds": round(t_big[1], 2),
        }
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
