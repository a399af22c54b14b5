"""Cross-fitting vs one split on real radiographs: out-of-fold (OOF) metrics by radiograph.

    # 1. pack once (CPU: validate -> group copies -> regroup with 5 folds -> pack at 256 for 224 crops)
    python scripts/crossfit_quality.py export --data-dir ../shared/data/kaggle-bone-sample --out .gpu/sample224.npz
    # 2. train and score (GPU when present; torch, numpy, scipy, scikit-learn and the core only, no Prefect)
    python scripts/crossfit_quality.py run --packed .gpu/sample224.npz --seeds 0,1,2 --out results.jsonl

For each variant (TrainSettings overrides) and seed, two modes on the same pool of radiographs:
`folds1`, the product's single regrouped split (early stopping and operating point on val, by
radiograph; judged on the regrouped test, ~20 % of the radiographs), and `folds5`, the product's
cross-fitting, every radiograph judged out of fold (README, "Cross-fitting: every radiograph
judged out of fold").
One JSON line per (variant, seed, mode): AUROC by radiograph with its 95 % interval, accuracy,
recall and specificity at the operating point, ECE, radiographs judged, train seconds; plus the
AUROC with flip test-time augmentation (mean margin of the image and its mirror).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

VARIANTS: dict[str, dict] = {
    "default": {},
    "lr3e-3_e30": {"epochs": 30, "patience": 8, "lr": 3e-3},
    "crop40_e30": {"epochs": 30, "patience": 8, "crop_min_area": 0.4, "rotation_degrees": 20.0},
    "smoke": {"epochs": 1, "image_size": 64},
}


def export(data_dir: Path, out: Path, image_size: int, folds: int) -> None:
    from boneflow.duplicates.leakage import audit_leakage
    from boneflow.intake.validate import validate_dataset
    from boneflow.settings import pack_size_for
    from boneflow.splits.folds import read_pool
    from boneflow.splits.pack import pack_dataset

    pack_size = pack_size_for(image_size)
    with tempfile.TemporaryDirectory() as tmp:
        validated = validate_dataset(data_dir, workdir=Path(tmp) / "work", pack_size=pack_size)
        audit = audit_leakage(validated)
        packed = pack_dataset(
            validated, audit, out_dir=Path(tmp) / "packed", split_policy="regroup", min_gate_n=0, folds=folds
        )
        pool = read_pool(packed)
        split_of = {p: name for name in ("train", "val", "test") for p in packed.split(name).paths}
        split = np.array([split_of[p] for p in pool.paths])
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            out,
            size=pack_size,
            folds=pool.folds,
            images=pool.images,
            labels=pool.labels,
            groups=np.array(pool.groups),
            paths=np.array(pool.paths),
            fold=pool.fold,
            split=split,
        )
    counts = {s: int((split == s).sum()) for s in ("train", "val", "test")}
    found = {
        "out": str(out),
        "bytes": out.stat().st_size,
        "files": len(pool.paths),
        "radiographs": len(set(pool.groups)),
    }
    print(json.dumps(found | counts))


def _margins(model, images: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    from boneflow.evaluate.predict import predict_margins

    plain = predict_margins(model, images, image_size=image_size)
    flipped = predict_margins(model, np.ascontiguousarray(images[:, :, ::-1]), image_size=image_size)
    return plain, (plain + flipped) / 2


def _summary(metrics: dict, tta_auroc: float | None) -> dict:
    scored = (f"{m}{ci}" for m in ("auroc", "accuracy", "recall_fractured", "specificity") for ci in ("", "_ci95"))
    keys = ("n", "files", *scored, "ece", "threshold")
    out = {k: metrics.get(k) for k in keys} | {"auroc_flip_tta": tta_auroc}
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def _auroc_by_radiograph(labels, groups, margins) -> float | None:
    from sklearn.metrics import roc_auc_score

    from boneflow.evaluate.calibration import sigmoid
    from boneflow.evaluate.radiographs import by_radiograph

    rad = by_radiograph(list(groups), labels, sigmoid(margins))
    return float(roc_auc_score(rad.labels, rad.probability)) if len(set(rad.labels.tolist())) == 2 else None


def _folds1(data: dict, settings, target_recall: float) -> dict:
    from boneflow.evaluate.calibration import fit_operating_point
    from boneflow.evaluate.predict import SplitScores, split_report
    from boneflow.splits.packed import InMemorySplits, SplitArrays
    from boneflow.train.fit import fit

    def part(name):
        rows = np.flatnonzero(data["split"] == name)
        return rows, SplitArrays(data["images"][rows], data["labels"][rows], list(data["paths"][rows]))

    (_, train), (val_rows, val), (test_rows, test) = part("train"), part("val"), part("test")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(InMemorySplits({"train": train, "val": val}, data["size"]), settings, checkpoint_dir=Path(tmp))
    seconds = time.perf_counter() - t0
    val_m, _ = _margins(result.model, val.images, settings.image_size)
    test_m, test_tta = _margins(result.model, test.images, settings.image_size)
    groups = data["groups"]
    point = fit_operating_point(val.labels, val_m, target_recall=target_recall, groups=list(groups[val_rows]))
    metrics = split_report(SplitScores(test.labels, test_m, test.paths, list(groups[test_rows])), point)
    tta = _auroc_by_radiograph(test.labels, groups[test_rows], test_tta)
    return {**_summary(metrics, tta), "train_seconds": round(seconds, 1), "epochs_run": [result.epochs_run]}


def _folds5(data: dict, settings, target_recall: float) -> dict:
    from boneflow.evaluate.calibration import fit_operating_point
    from boneflow.evaluate.crossfit import crossfitted_points, oof_report
    from boneflow.evaluate.predict import SplitScores
    from boneflow.splits.folds import Pool, member_splits
    from boneflow.train.fit import fit

    pool = Pool(data["images"], data["labels"], list(data["paths"]), list(data["groups"]), data["fold"], data["folds"])
    margins, tta = np.zeros(len(pool.labels)), np.zeros(len(pool.labels))
    seconds, epochs = 0.0, []
    for f in range(pool.folds):
        parts = member_splits(pool, f, size=data["size"], seed=settings.seed, classes=("not fractured", "fractured"))
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = fit(parts, settings, checkpoint_dir=Path(tmp))
        seconds += time.perf_counter() - t0
        epochs.append(result.epochs_run)
        rows = np.flatnonzero(pool.fold == f)
        margins[rows], tta[rows] = _margins(result.model, pool.images[rows], settings.image_size)
    scores = SplitScores(pool.labels, margins, pool.paths, pool.groups)
    points = crossfitted_points(scores, pool.fold, target_recall=target_recall)
    published = fit_operating_point(pool.labels, margins, target_recall=target_recall, groups=pool.groups)
    metrics = oof_report(scores, pool.fold, points, published)
    tta_auc = _auroc_by_radiograph(pool.labels, pool.groups, tta)
    return {**_summary(metrics, tta_auc), "train_seconds": round(seconds, 1), "epochs_run": epochs}


def run(packed_file: Path, variants: list[str], modes: list[str], seeds: list[int], out: Path | None) -> None:
    import torch

    from boneflow.settings import TrainSettings

    raw = np.load(packed_file)
    data = {k: raw[k] for k in raw.files}
    data["size"], data["folds"] = int(data["size"]), int(data["folds"])
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    for name in variants:
        for seed in seeds:
            settings = replace(TrainSettings(pretrained=False), **{**VARIANTS[name], "seed": seed})
            for mode in modes:
                t0 = time.perf_counter()
                found = (_folds5 if mode == "folds5" else _folds1)(data, settings, 0.9)
                wall = round(time.perf_counter() - t0, 1)
                head = {"variant": name, "seed": seed, "mode": mode, "device": device, "wall_seconds": wall}
                line = json.dumps(head | found)
                print(line, flush=True)
                if out is not None:
                    with out.open("a") as fh:
                        fh.write(line + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export")
    ex.add_argument("--data-dir", type=Path, required=True)
    ex.add_argument("--out", type=Path, required=True)
    ex.add_argument("--image-size", type=int, default=224)
    ex.add_argument("--folds", type=int, default=5)
    rn = sub.add_parser("run")
    rn.add_argument("--packed", type=Path, required=True)
    rn.add_argument("--variants", default="default")
    rn.add_argument("--modes", default="folds5,folds1")
    rn.add_argument("--seeds", default="0,1,2")
    rn.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.cmd == "export":
        export(args.data_dir, args.out, args.image_size, args.folds)
    else:
        run(
            args.packed,
            args.variants.split(","),
            args.modes.split(","),
            [int(s) for s in args.seeds.split(",")],
            args.out,
        )


if __name__ == "__main__":
    main()
