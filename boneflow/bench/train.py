"""`boneflow bench train`: our training step vs the seed-style loop on the same images and size,
in the same process. Also the data supply alone (our batch pipeline vs the seed DataLoader).

The images are synthetic radiograph-like pictures (boneflow.demo.bones) written as
JPEGs at 10/7 of the crop side (the seed decodes and resizes full files every time); ours packs
the same files once at 8/7 of the crop (load_xray) and trains from the uint8 array.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from boneflow.bench.notebook_baseline import seed_data_rate, seed_loader, seed_train_rate, write_jpeg_folder
from boneflow.demo.bones import bone_images
from boneflow.intake.decode import load_xray
from boneflow.intake.layout import CLASSES
from boneflow.settings import TrainSettings, pack_size_for
from boneflow.splits.packed import SplitArrays
from boneflow.train.augment import TrainPreset
from boneflow.train.device import fast_layout, place_model, use_bf16
from boneflow.train.fit import SplitOnDevice, epoch_generator, make_optimizer, train_one_epoch
from boneflow.train.model import build_model


def our_data_rate(data, preset, *, batch_size: int, batches: int, seed: int = 0, warmup: int = 2) -> dict:
    """img/s of gather + TrainPreset alone (what feeds each training step in train_one_epoch:
    batch gather from the packed uint8 array, one resample per batch, channels_last), in this
    process on torch's intra-op threads."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(data.n, generator=generator).numpy()
    for _ in range(warmup):
        preset(data.batch(order[:batch_size])[0], generator)
    start, seen = time.perf_counter(), 0
    for step in range(batches):
        begin = (step * batch_size) % max(data.n - batch_size + 1, 1)
        images, labels = data.batch(order[begin : begin + batch_size])
        x = fast_layout(preset(images, generator))
        seen += len(labels)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"img_per_s": seen / seconds, "seconds": seconds, "images": seen}


def our_train_rate(data, settings, *, steps: int, warmup: int = 2) -> dict:
    device = data.device
    bf16 = use_bf16(device)
    torch.manual_seed(settings.seed)
    model = place_model(build_model(pretrained=False), device)
    optimizer = make_optimizer(model, settings, device)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    preset = TrainPreset(crop_size=settings.image_size)

    def run(n_steps: int, epoch: int) -> dict:
        done, images, seconds = 0, 0, 0.0
        while done < n_steps:
            r = train_one_epoch(
                model,
                data,
                preset=preset,
                optimizer=optimizer,
                scheduler=None,
                criterion=criterion,
                batch_size=settings.batch_size,
                generator=epoch_generator(settings.seed, epoch + done),
                bf16=bf16,
                max_steps=n_steps - done,
            )
            done, images, seconds = done + r["steps"], images + r["images"], seconds + r["seconds"]
        return {"img_per_s": images / seconds, "seconds": seconds, "images": images}

    run(warmup, 0)
    return {**run(steps, 1000), "precision": "bf16" if bf16 else "fp32", "device": str(device)}


def bench_train(
    *,
    images: int = 256,
    size: int = 224,
    batch_size: int = 32,
    steps: int = 8,
    seed_workers: int | None = None,
    data_batches: int = 64,
    seed: int = 0,
) -> dict:
    if seed_workers is None:  # one DataLoader worker per usable CPU core (more only add contention)
        seed_workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    pack_size = pack_size_for(size)
    source_size = int(round(size * 10 / 7))
    rng = np.random.default_rng(seed)
    labels = (rng.random(images) < 0.5).astype(np.int64)
    settings = TrainSettings(image_size=size, batch_size=batch_size, pretrained=False, seed=seed, device="cpu")
    with tempfile.TemporaryDirectory(prefix="boneflow-bench-") as tmp:
        root = write_jpeg_folder(bone_images(labels, source_size, rng), labels, Path(tmp) / "images")
        started = time.perf_counter()  # each JPEG decoded once into the packed array, as the data part does
        files = sorted(root.rglob("*.jpg"))
        packed_images = np.stack([load_xray(path, pack_size) for path in files])
        packed_labels = np.array([CLASSES.index(path.parent.name) for path in files], dtype=np.int64)
        pack_seconds = time.perf_counter() - started
        data = SplitOnDevice(SplitArrays(packed_images, packed_labels, []), torch.device("cpu"))
        ours_data = our_data_rate(data, TrainPreset(crop_size=size), batch_size=batch_size, batches=data_batches)
        ours = our_train_rate(data, settings, steps=steps)
        loader = seed_loader(root, size=size, batch_size=batch_size, workers=seed_workers)
        seed_data = seed_data_rate(loader, batches=data_batches)
        seed_run = seed_train_rate(loader, steps=steps)
        del loader  # stops persistent workers before the temp folder goes
    return {
        "benchmark": "train",
        "images": images,
        "size": size,
        "pack_size": pack_size,
        "source_jpeg_size": source_size,
        "batch_size": batch_size,
        "steps": steps,
        "torch_threads": torch.get_num_threads(),
        "seed_dataloader_workers": seed_workers,
        "data_supply": {
            "ours": "main process, torch intra-op threads: gather from packed uint8 + TrainPreset (batched, one "
            "bilinear resample per image for random resized crop + rotation + flip, in cache-sized blocks on CPU; "
            "brightness/contrast)",
            "seed": f"DataLoader(num_workers={seed_workers}, persistent): ImageFolder + PIL Resize, "
            "RandomHorizontalFlip, RandomRotation, ToTensor, Normalize; workers = CPU cores, as the "
            "seed notebook fed its loop through a DataLoader with workers",
            "batches_timed": {"ours": data_batches, "seed": seed_data["images"] // batch_size},
        },
        "pack_seconds_once": round(pack_seconds, 3),
        "ours": {
            "train_img_per_s": round(ours["img_per_s"], 2),
            "data_img_per_s": round(ours_data["img_per_s"], 1),
            "precision": ours["precision"],
            "memory_format": "channels_last",
            "channels": 1,
        },
        "seed": {
            "train_img_per_s": round(seed_run["img_per_s"], 2),
            "data_img_per_s": round(seed_data["img_per_s"], 1),
            "precision": "fp32",
            "memory_format": "NCHW",
            "channels": 3,
        },
        "train_ratio": round(ours["img_per_s"] / seed_run["img_per_s"], 2),
        "data_ratio": round(ours_data["img_per_s"] / seed_data["img_per_s"], 2),
        "goals": {"train_ratio": 3.0, "data_ratio": 10.0},
    }
