#!/usr/bin/env python
"""GPU training benchmark: ours vs the seed-style loader on a synthetic full-size set.

Needs only torch, torchvision, numpy and pillow: it puts the repository on sys.path and uses
boneflow.train.* and boneflow.bench.notebook_baseline, which import nothing else at module level.

    python scripts/gpu_bench.py                       # H100: 10k images, 224 crops from 256, 20 epochs
    python scripts/gpu_bench.py --images 256 --epochs 1 --size 64 --seed-steps 2   # CPU smoke run

Prints one JSON object: ours (img/s per epoch, epoch seconds, total seconds for all epochs,
peak GPU memory) and the seed-style loop (img/s over --seed-steps steps, peak GPU memory).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from boneflow.bench.notebook_baseline import seed_loader, seed_train_rate, write_jpeg_folder  # noqa: E402
from boneflow.demo.bones import bone_images  # noqa: E402
from boneflow.intake.layout import CLASSES  # noqa: E402
from boneflow.settings import TrainSettings, pack_size_for  # noqa: E402
from boneflow.splits.packed import InMemorySplits, SplitArrays  # noqa: E402
from boneflow.train.device import precision_name, resolve_device  # noqa: E402
from boneflow.train.fit import fit  # noqa: E402


def synthetic_split(n: int, size: int, rng: np.random.Generator) -> SplitArrays:
    labels = (rng.random(n) < 0.5).astype(np.int64)
    return SplitArrays(bone_images(labels, size, rng), labels, [f"synthetic/{i}" for i in range(n)])


def peak_memory_mib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000, help="training images (val is 10%% of this)")
    parser.add_argument("--size", type=int, default=224, help="crop side; packed side is 8/7 of it (256 for 224)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (ours)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed-images", type=int, default=2048, help="JPEGs written for the seed-style loop")
    parser.add_argument("--seed-steps", type=int, default=20, help="timed steps of the seed-style loop")
    parser.add_argument("--seed-workers", type=int, default=8, help="DataLoader workers of the seed-style loop")
    args = parser.parse_args()

    device = resolve_device(args.device)
    torch.backends.cudnn.benchmark = True
    pack_size = pack_size_for(args.size)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    train = synthetic_split(args.images, pack_size, rng)
    val = synthetic_split(max(args.images // 10, args.batch_size // 4, 16), pack_size, rng)
    packed = InMemorySplits({"train": train, "val": val}, pack_size)
    make_seconds = time.perf_counter() - started

    settings = TrainSettings(
        image_size=args.size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=0,
        pretrained=False,
        compile=args.compile,
        device=str(device),
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    epochs = []
    with tempfile.TemporaryDirectory(prefix="gpu-bench-ckpt-") as checkpoints:

        def on_epoch(stats: dict) -> None:
            epochs.append({k: stats[k] for k in ("epoch", "seconds", "img_per_s", "train_loss", "val_acc")})
            digits = {"seconds": 2, "img_per_s": 1, "val_acc": 4}
            line = {"epoch": stats["epoch"]} | {k: round(stats[k], d) for k, d in digits.items()}
            print(json.dumps(line), file=sys.stderr, flush=True)

        started = time.perf_counter()
        result = fit(packed, settings, checkpoint_dir=Path(checkpoints), on_epoch=on_epoch)
        fit_seconds = time.perf_counter() - started
    ours_peak = peak_memory_mib(device)
    steady = epochs[1:] or epochs  # the first epoch pays cuDNN autotuning / compilation

    del packed, train
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory(prefix="gpu-bench-seed-") as tmp:
        seed_n = min(args.seed_images, args.images)
        seed_labels = (rng.random(seed_n) < 0.5).astype(np.int64)
        source = int(round(args.size * 10 / 7))
        root = write_jpeg_folder(bone_images(seed_labels, source, rng), seed_labels, Path(tmp), CLASSES)
        loader = seed_loader(root, size=args.size, batch_size=args.batch_size, workers=args.seed_workers)
        seed = seed_train_rate(loader, steps=args.seed_steps, device=str(device))
        del loader
    seed_peak = peak_memory_mib(device)

    ours_rate = float(np.median([e["img_per_s"] for e in steady]))
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "size": args.size,
        "pack_size": pack_size,
        "batch_size": args.batch_size,
        "synthetic_set_seconds": round(make_seconds, 1),
        "ours": {
            "images": args.images,
            "epochs": result.epochs_run,
            "precision": precision_name(device),
            "compile": args.compile,
            "img_per_s_median_after_first_epoch": round(ours_rate, 1),
            "epoch_seconds": [round(e["seconds"], 2) for e in epochs],
            "fit_seconds_total": round(fit_seconds, 1),  # all epochs incl. val, checkpoints, warm-up
            "train_seconds_total": round(sum(e["seconds"] for e in epochs), 1),
            "peak_gpu_mib": ours_peak,
            "final_val_acc": round(epochs[-1]["val_acc"], 4),
        },
        "seed": {
            "images": seed_n,
            "steps": args.seed_steps,
            "workers": args.seed_workers,
            "img_per_s": round(seed["img_per_s"], 1),
            "epoch_seconds_for_same_images_estimate": round(args.images / seed["img_per_s"], 1),
            "peak_gpu_mib": seed_peak,
        },
        "ratio": round(ours_rate / seed["img_per_s"], 2),
        "goals": {"ours_img_per_s": 8000, "twenty_epochs_seconds": 60},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
