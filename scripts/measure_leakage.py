"""Measure the leakage audit on a synthetic demo set; prints JSON.

    .venv/bin/python scripts/measure_leakage.py --data-dir /tmp/x          # an existing demo set
    .venv/bin/python scripts/measure_leakage.py --seed 1 --n 2500          # writes one to a temp dir

Figures: planted copies found, false pairs (flagged pairs that are not planted copies), the
false-positive rate over all distinct cross-split pairs, the largest distance among true copies
and the smallest among distinct pairs (from the pipeline's own hashes: validate_dataset +
audit_leakage). Then a separate robustness check: `--hard` train originals are copied again
(JPEG quality 30-60, resized 0.35-0.5x, mirrored, rotated 90 degrees, contrast x0.8-1.25, and all
of resize + mirror + contrast + q40 at once), each copy decoded and hashed exactly as validation
does, and its distance to its original is reported per kind. `--baseline64` also scores the
former 64-bit phash (hash_size=8, threshold 4) on the same decodes for comparison.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from boneflow.demo.dataset import dataset_root, write_demo_dataset  # noqa: E402
from boneflow.duplicates.grouping import near_pairs  # noqa: E402
from boneflow.duplicates.leakage import DEFAULT_MAX_DISTANCE, audit_leakage  # noqa: E402
from boneflow.intake.decode import decode_xray  # noqa: E402
from boneflow.intake.layout import SPLITS  # noqa: E402
from boneflow.intake.validate import HASH_BITS, HASH_KIND, _hashes, validate_dataset  # noqa: E402

_T = Image.Transpose


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _scaled(img: Image.Image, s: float) -> Image.Image:
    return img.resize((max(32, int(img.width * s)), max(32, int(img.height * s))), Image.Resampling.BICUBIC)


def hard_copies(data: bytes, rng: np.random.Generator) -> dict[str, bytes]:
    img = Image.open(io.BytesIO(data)).convert("L")
    return {
        "jpeg_q30_60": _jpeg(img, int(rng.integers(30, 61))),
        "resized_0.35_0.5": _jpeg(_scaled(img, rng.uniform(0.35, 0.5)), 90),
        "mirrored": _jpeg(img.transpose(_T.FLIP_LEFT_RIGHT), 90),
        "rot90": _jpeg(img.transpose(_T.ROTATE_90), 90),
        "contrast_0.8_1.25": _jpeg(ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.25)), 90),
        "combined": _jpeg(ImageEnhance.Contrast(_scaled(img.transpose(_T.FLIP_LEFT_RIGHT), 0.4)).enhance(1.2), 40),
    }


def _distance(h_a: np.ndarray, h_b: np.ndarray) -> int:
    """min over transforms of Hamming(h_a identity, h_b transform) for one pair ([T, W] each)."""
    return int(np.bitwise_count(h_a[0][None, :] ^ h_b).sum(axis=1).min())


def _cross_split_stats(
    hashes: np.ndarray, split_of: list[str], copies: set[tuple[int, int]], threshold: int, window: int
) -> dict:
    """Distinct cross-split pairs: count, those within `threshold`, the smallest distance (searched
    up to `window`) and the planted copies' distances."""
    by = {s: [k for k, sp in enumerate(split_of) if sp == s] for s in SPLITS}
    n_pairs, low, copy_d = 0, [], []
    for ai, sa in enumerate(SPLITS):
        for sb in SPLITS[ai + 1 :]:
            ia, ib = by[sa], by[sb]
            n_pairs += len(ia) * len(ib)
            ii, jj, dd, _ = near_pairs(hashes[ia], hashes[ib], max_distance=window)
            for i, j, d in zip(ii.tolist(), jj.tolist(), dd.tolist()):
                key = (ia[i], ib[j])
                (copy_d if key in copies or key[::-1] in copies else low).append(d)
    n_distinct = n_pairs - len(copies)
    low_arr = np.array(low, dtype=np.int64)
    false_pairs = int((low_arr <= threshold).sum())
    return {
        "distinct_pairs": n_distinct,
        "false_pairs": false_pairs,
        "false_positive_rate": false_pairs / max(1, n_distinct),
        "min_distinct_distance": int(low_arr.min()) if len(low_arr) else f"> {window}",
        "distinct_within_window": {int(d): int(c) for d, c in zip(*np.unique(low_arr, return_counts=True))},
    }


def _phash64_all(grey: Image.Image) -> np.ndarray:
    import imagehash

    turns = (_T.FLIP_LEFT_RIGHT, _T.ROTATE_90, _T.ROTATE_180, _T.ROTATE_270)
    bits = [np.packbits(imagehash.phash(v, hash_size=8).hash.reshape(-1)) for v in (grey, *map(grey.transpose, turns))]
    return np.stack([np.frombuffer(b.tobytes(), dtype=">u8").astype(np.uint64) for b in bits])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, help="a demo set written by `boneflow demo-data` (has planted.json)")
    ap.add_argument("--seed", type=int, default=0, help="without --data-dir: write a demo set of this seed")
    ap.add_argument("--n", type=int, default=2500, help="without --data-dir: images in that set")
    ap.add_argument("--pack-size", type=int, default=256, help="decode size (the audit CLI's default)")
    ap.add_argument("--max-distance", type=int, default=DEFAULT_MAX_DISTANCE)
    ap.add_argument("--hard", type=int, default=200, help="train originals to copy hard (0: skip)")
    ap.add_argument("--baseline64", action="store_true", help="also score the former 64-bit phash, threshold 4")
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="measure-leakage-") as tmp:
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = Path(tmp) / "demo"
            write_demo_dataset(data_dir, n=args.n, seed=args.seed)
        planted = json.loads((data_dir / "planted.json").read_text())
        root = dataset_root(data_dir)
        t0 = time.perf_counter()
        validated = validate_dataset(root, workdir=Path(tmp) / "work", pack_size=args.pack_size, workers=args.workers)
        t1 = time.perf_counter()
        audit = audit_leakage(validated, max_distance=args.max_distance)
        t2 = time.perf_counter()

        rel = [r.relpath for r in validated.records]
        idx = {r: k for k, r in enumerate(rel)}
        split_of = [r.split for r in validated.records]
        copies = {(idx[c["original"]], idx[c["copy"]]) for c in planted["copies"]}
        flagged = {(p["a"], p["b"]) for p in audit.report["pairs"]}
        planted_pairs = {(c["original"], c["copy"]) for c in planted["copies"]}
        copy_dist = {
            f"{c['kind']}:{c['copy'].split('/')[0]}": _distance(
                validated.hashes[idx[c["original"]]], validated.hashes[idx[c["copy"]]]
            )
            for c in planted["copies"]
        }
        stats = _cross_split_stats(
            validated.hashes, split_of, copies, args.max_distance, window=max(args.max_distance + 16, 48)
        )
        result = {
            "data_dir": str(data_dir),
            "seed": planted.get("seed"),
            "n": planted.get("n"),
            "kept": len(rel),
            "pack_size": args.pack_size,
            "hash": HASH_KIND,
            "hash_bits": HASH_BITS,
            "max_distance": args.max_distance,
            "planted": {
                "copies": len(planted_pairs),
                "found": len(planted_pairs & flagged),
                "all_found": planted_pairs <= flagged,
                "distances": copy_dist,
                "max_copy_distance": max(copy_dist.values()) if copy_dist else None,
            },
            "audit_pairs": len(flagged),
            "false_pairs_in_report": len(flagged - planted_pairs),
            **stats,
            "test_leaking": audit.report["counts"]["test_leaking"],
            "test": audit.report["counts"]["test"],
            "seconds": {"validate": round(t1 - t0, 2), "audit": round(t2 - t1, 3)},
        }

        if args.hard or args.baseline64:
            rng = np.random.default_rng(12345)
            originals = [k for k, r in enumerate(rel) if split_of[k] == "train" and r.endswith(".jpg")][: args.hard]
            per_kind: dict[str, list[int]] = {}
            per_kind64: dict[str, list[int]] = {}
            for k in originals:
                src = (root / rel[k]).read_bytes()
                h64 = _phash64_all(decode_xray(src, args.pack_size)[1]) if args.baseline64 else None
                for kind, data in hard_copies(src, rng).items():
                    grey = decode_xray(data, args.pack_size)[1]
                    per_kind.setdefault(kind, []).append(_distance(validated.hashes[k], _hashes(grey)))
                    if h64 is not None:
                        per_kind64.setdefault(kind, []).append(_distance(h64, _phash64_all(grey)))
            if args.hard:
                result["hard_copies"] = {
                    kind: {
                        "n": len(d),
                        "found": int(sum(x <= args.max_distance for x in d)),
                        "max_distance": max(d),
                        "median": float(np.median(d)),
                    }
                    for kind, d in per_kind.items()
                }
            if args.baseline64:
                h64 = np.stack([_phash64_all(decode_xray((root / r).read_bytes(), args.pack_size)[1]) for r in rel])
                base = _cross_split_stats(h64, split_of, copies, 4, window=8)
                base["planted_max_copy_distance"] = max(_distance(h64[a], h64[b]) for a, b in copies)
                if per_kind64:
                    base["hard_copies"] = {
                        kind: {"found": int(sum(x <= 4 for x in d)), "n": len(d), "max_distance": max(d)}
                        for kind, d in per_kind64.items()
                    }
                result["baseline_phash64_threshold4"] = base
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
