"""Measure duplicate grouping: recall of rotated copies, false links, and time.

    python scripts/measure_grouping.py --data-dir ../shared/data/kaggle-bone-sample
    python scripts/measure_grouping.py --data-dir /tmp/demo          # a demo-data set (uses planted.json)
    python scripts/measure_grouping.py --data-dir DIR --scale 5       # timing on a set made 5x larger

Ground truth on the Kaggle sample comes from its file names, used here only as a measuring
stick: files named `N-rotated...` in one class folder are turns of one radiograph N (plain
`N.jpg` files are left out of the truth: in the merged Kaggle set the same number names
different radiographs from different source sets). A "false link" is a pair of files of two
different rotated families put into one group. On a demo set the truth is planted.json.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boneflow.data.grouping import GroupingSettings, find_duplicate_groups  # noqa: E402
from boneflow.data.validate import validate_dataset  # noqa: E402

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


def planted_families(relpaths: list[str], data_dir: Path) -> dict[int, str]:
    planted = json.loads((data_dir / "planted.json").read_text())
    index = {rel: i for i, rel in enumerate(relpaths)}
    out = {}
    for family in planted.get("rotated_families", []):
        for rel in family["members"]:
            if rel in index:
                out[index[rel]] = family["base"]
    return out


def score(groups: np.ndarray, families: dict[int, str], sha: list[str]) -> dict:
    """Pair recall within families and false links across them (distinct files only)."""
    seen, members = set(), []
    for i, fam in sorted(families.items()):
        if sha[i] not in seen:
            seen.add(sha[i])
            members.append((i, fam))
    pos = hit = neg = false = 0
    for (i, fi), (j, fj) in combinations(members, 2):
        same_group = groups[i] == groups[j]
        if fi == fj:
            pos += 1
            hit += int(same_group)
        else:
            neg += 1
            false += int(same_group)
    return {
        "rotated_pairs": pos,
        "rotated_pair_recall": round(hit / pos, 4) if pos else None,
        "distinct_family_pairs": neg,
        "false_links": false,
        "false_link_rate": false / neg if neg else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--scale", type=int, default=1, help="tile the decoded set N times (timing only)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        validated = validate_dataset(args.data_dir, workdir=Path(tmp), pack_size=256)
        t_validate = time.perf_counter() - t0
    rel = [r.relpath for r in validated.records]
    sha = [validated.file_hashes[r] for r in rel]
    planted = (args.data_dir / "planted.json").is_file()
    families = planted_families(rel, args.data_dir) if planted else name_families(rel)
    settings = GroupingSettings()
    t0 = time.perf_counter()
    groups = find_duplicate_groups(sha, validated.hashes, validated.thumbs, settings=settings)
    t_group = time.perf_counter() - t0
    result = {
        "data_dir": str(args.data_dir),
        "images": len(rel),
        "distinct_files": len(set(sha)),
        "groups": int(groups.group.max() + 1) if len(rel) else 0,
        "links": {k: sum(1 for *_, kind in groups.links if kind == k) for k in ("exact", "near", "rotated")},
        "truth": "planted.json" if planted else "file names (N-rotated... families)",
        **score(groups.group, families, sha),
        "seconds": {"validate": round(t_validate, 2), "group": round(t_group, 2)},
    }
    if args.scale > 1:
        # Timing on a larger workload: the same thumbnails and hashes tiled, each tile nudged
        # so tiles are distinct files (the work grows with the distinct count).
        reps = args.scale
        big_sha = [f"{s}-{k}" for k in range(reps) for s in sha]
        big_thumbs = np.concatenate(
            [np.clip(validated.thumbs.astype(np.int16) + k, 0, 255).astype(np.uint8) for k in range(reps)]
        )
        big_hashes = np.concatenate([validated.hashes] * reps)
        t0 = time.perf_counter()
        find_duplicate_groups(big_sha, big_hashes, big_thumbs, settings=settings)
        result["scaled"] = {"images": len(big_sha), "group_seconds": round(time.perf_counter() - t0, 2)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
