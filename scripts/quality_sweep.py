"""Real-data quality: train variants on a regrouped (duplicate-free) split and report honest
test metrics at the operating threshold chosen on validation.

    # 1. pack the data once (CPU; validate -> group copies -> regroup -> pack), to a compressed file
    python scripts/quality_sweep.py export --data-dir ../shared/data/kaggle-bone-sample --out /tmp/sample224.npz
    # 2. train and score every variant (GPU if present; torch + the core only, no Prefect)
    python scripts/quality_sweep.py run --packed /tmp/sample224.npz --variants default,epochs30 --out results.jsonl

Each variant is the default TrainSettings plus a few changed fields (VARIANTS below). For each
it reports, on the regrouped test: accuracy, fractured recall and specificity at the operating
threshold (highest threshold with validation recall >= 0.90), AUROC, each with a 95 % interval
(Wilson for proportions, bootstrap over images for AUROC), plus AUROC with test-time flips and
with the image border masked (a model that keys on black rotation corners, padding or side
markers loses more there). One JSON line per variant.
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

from boneflow.settings import pack_size_for  # noqa: E402

SPLITS = ("train", "val", "test", "official_test")
VARIANTS: dict[str, dict] = {
    "default": {},
    "epochs30": {"epochs": 30, "patience": 8},
    "epochs60": {"epochs": 60, "patience": 0},
    "rot30": {"epochs": 30, "patience": 8, "rotation_degrees": 30.0},
    "rot30_e60": {"epochs": 60, "patience": 0, "rotation_degrees": 30.0},
    "noweights": {"epochs": 30, "patience": 8, "class_weighted": False},
    "crop40": {"epochs": 30, "patience": 8, "crop_min_area": 0.4, "rotation_degrees": 20.0},
    "lr3e-3": {"epochs": 30, "patience": 8, "lr": 3e-3},
    "size128": {"epochs": 30, "patience": 8, "image_size": 128},
    "bs32": {"epochs": 30, "patience": 8, "batch_size": 32},
    "smoke": {"epochs": 1, "image_size": 64},
    "lr3e-3_crop40": {"epochs": 30, "patience": 8, "lr": 3e-3, "crop_min_area": 0.4, "rotation_degrees": 20.0},
    "lr3e-3_e60": {"epochs": 60, "patience": 0, "lr": 3e-3},
}


def export(data_dir: Path, out: Path, image_size: int, seed: int) -> None:
    from boneflow.duplicates.leakage import audit_leakage
    from boneflow.intake.validate import validate_dataset
    from boneflow.splits.pack import pack_dataset

    pack_size = pack_size_for(image_size)
    with tempfile.TemporaryDirectory() as tmp:
        validated = validate_dataset(data_dir, workdir=Path(tmp) / "work", pack_size=pack_size)
        audit = audit_leakage(validated)
        packed = pack_dataset(
            validated, audit, out_dir=Path(tmp) / "packed", split_policy="regroup", min_gate_n=0, seed=seed
        )
        arrays = {}
        for name in SPLITS:
            split = packed.split(name)
            arrays[f"{name}_images"] = np.asarray(split.images)
            arrays[f"{name}_labels"] = np.asarray(split.labels)
        groups = json.loads((packed.dir / "splits.json").read_text())["files"]
        for name in ("val", "test"):  # effective sample size: distinct radiographs, not files
            arrays[f"{name}_groups"] = np.array([groups[p]["group"] for p in packed.split(name).paths])
        np.savez_compressed(out, size=pack_size, **arrays)
    print(
        json.dumps(
            {"out": str(out), "bytes": out.stat().st_size, **{n: int(len(arrays[f"{n}_labels"])) for n in SPLITS}}
        )
    )


def _wilson(k: int, n: int) -> list[float]:
    if n == 0:
        return [float("nan")] * 2
    z, p = 1.959964, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 3), round(centre + half, 3)]


def _auroc_ci(labels: np.ndarray, scores: np.ndarray, rng: np.random.Generator) -> tuple[float, list[float]]:
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(labels, scores)
    boots = []
    for _ in range(500):
        idx = rng.integers(0, len(labels), len(labels))
        if len(set(labels[idx].tolist())) == 2:
            boots.append(roc_auc_score(labels[idx], scores[idx]))
    return round(float(auc), 3), [round(float(np.quantile(boots, q)), 3) for q in (0.025, 0.975)]


def _masked(images: np.ndarray, border: float) -> np.ndarray:
    out = np.array(images)
    k = int(round(out.shape[-1] * border))
    out[:, :k], out[:, -k:], out[:, :, :k], out[:, :, -k:] = 0, 0, 0, 0
    return out


def _score(name: str, overrides: dict, data: dict, size: int) -> dict:
    import torch

    from boneflow.evaluate.calibration import fit_operating_point
    from boneflow.evaluate.predict import predict_margins
    from boneflow.settings import TrainSettings
    from boneflow.splits.packed import InMemorySplits, SplitArrays
    from boneflow.train.fit import fit

    settings = replace(TrainSettings(pretrained=False), **overrides)
    packed = InMemorySplits({s: SplitArrays(data[f"{s}_images"], data[f"{s}_labels"], []) for s in SPLITS}, size)
    if pack_size_for(settings.image_size) > size + 1:  # smaller crops come from a smaller pack
        small = pack_size_for(settings.image_size)
        resized = {
            s: torch.nn.functional.interpolate(
                torch.from_numpy(np.asarray(data[f"{s}_images"]))[:, None].float(), size=(small, small), mode="area"
            )[:, 0]
            .round()
            .byte()
            .numpy()
            for s in SPLITS
        }
        packed = InMemorySplits({s: SplitArrays(resized[s], data[f"{s}_labels"], []) for s in SPLITS}, small)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = fit(packed, settings, checkpoint_dir=Path(tmp))
    train_s = time.perf_counter() - t0
    model = result.model

    def margins(split: str, images=None, flip: bool = False) -> np.ndarray:
        imgs = packed.split(split).images if images is None else images
        if flip:
            imgs = np.ascontiguousarray(imgs[:, :, ::-1])
        return predict_margins(model, imgs, image_size=settings.image_size)

    val_y, test_y = packed.split("val").labels, packed.split("test").labels
    point = fit_operating_point(val_y, margins("val"), target_recall=0.9)
    m_test = margins("test")
    pred = point.predict(m_test)
    tp = int(((pred == 1) & (test_y == 1)).sum())
    tn = int(((pred == 0) & (test_y == 0)).sum())
    pos, neg = int((test_y == 1).sum()), int((test_y == 0).sum())
    rng = np.random.default_rng(0)
    auc, auc_ci = _auroc_ci(test_y, m_test, rng)
    tta = (m_test + margins("test", flip=True)) / 2
    masked = margins("test", images=_masked(packed.split("test").images, 0.12))
    official = margins("official_test")
    return {
        "variant": name,
        "overrides": overrides,
        "device": str(next(model.parameters()).device),
        "epochs_run": len(result.history),
        "train_seconds": round(train_s, 1),
        "n_test": len(test_y),
        "test_groups": int(len(set(data["test_groups"].tolist()))),
        "threshold": round(point.threshold, 3),
        "accuracy": round((tp + tn) / len(test_y), 3),
        "accuracy_ci95": _wilson(tp + tn, len(test_y)),
        "recall": round(tp / pos, 3),
        "recall_ci95": _wilson(tp, pos),
        "specificity": round(tn / neg, 3),
        "specificity_ci95": _wilson(tn, neg),
        "auroc": auc,
        "auroc_ci95": auc_ci,
        "auroc_tta_flip": _auroc_ci(test_y, tta, rng)[0],
        "auroc_border_masked": _auroc_ci(test_y, masked, rng)[0],
        "val_auroc": _auroc_ci(val_y, margins("val"), rng)[0],
        "official_test_auroc": _auroc_ci(packed.split("official_test").labels, official, rng)[0],
    }


def run(packed_file: Path, variants: list[str], out: Path | None, seeds: list[int]) -> None:
    data = dict(np.load(packed_file))
    size = int(data.pop("size"))
    for name in variants:
        for seed in seeds:
            line = json.dumps(_score(name, {**VARIANTS[name], "seed": seed}, data, size))
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
    ex.add_argument("--seed", type=int, default=0)
    rn = sub.add_parser("run")
    rn.add_argument("--packed", type=Path, required=True)
    rn.add_argument("--variants", default="default")
    rn.add_argument("--out", type=Path)
    rn.add_argument("--seeds", default="0", help="training seeds (init, order, augmentation), comma-separated")
    args = ap.parse_args()
    if args.cmd == "export":
        export(args.data_dir, args.out, args.image_size, args.seed)
    else:
        run(args.packed, args.variants.split(","), args.out, [int(x) for x in args.seeds.split(",")])


if __name__ == "__main__":
    main()
