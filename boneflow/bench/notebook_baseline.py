"""The seed notebook's training input path, rebuilt as the baseline of
`boneflow bench` (README "Performance"): torchvision ImageFolder + PIL transforms (Resize, RandomHorizontalFlip,
RandomRotation, ToTensor, Normalize) through a DataLoader, into a 3-channel fp32 NCHW
ResNet18 trained with Adam. Only torch/torchvision/PIL/numpy (the GPU script uses it too)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms
from torchvision.models import resnet18

from boneflow.intake.layout import CLASSES

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def write_jpeg_folder(images: np.ndarray, labels: np.ndarray, root: Path, classes=CLASSES) -> Path:
    """ImageFolder layout root/<class>/<i>.jpg from uint8 [N,H,W] (quality 90, like typical scans)."""
    root = Path(root)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i, (picture, label) in enumerate(zip(images, labels)):
        Image.fromarray(picture).save(root / classes[int(label)] / f"{i:06d}.jpg", quality=90)
    return root


def seed_loader(root: Path, *, size: int, batch_size: int, workers: int) -> DataLoader:
    transform = transforms.Compose(
        [
            transforms.Resize((size, size)),
            transforms.RandomHorizontalFlip(),
            transforms.RandomRotation(10),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    dataset = datasets.ImageFolder(str(root), transform=transform)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )


def _batches(loader: DataLoader):
    while True:  # restart the epoch as often as the benchmark needs
        yield from loader


def seed_train_rate(loader: DataLoader, *, steps: int, warmup: int = 2, device: str = "cpu") -> dict:
    """img/s of the seed's loop: fp32, NCHW, 3 channels, Adam, data loading included."""
    if steps < 1:
        raise ValueError("seed_train_rate: steps must be at least 1")
    model = resnet18(num_classes=2).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    batches = _batches(loader)
    model.train()
    seen, start = 0, time.perf_counter()  # both reset once the warm-up steps are done
    for step in range(warmup + steps):
        if step == warmup:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start, seen = time.perf_counter(), 0
        x, y = next(batches)
        x, y = x.to(device), y.to(device)
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(y)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"img_per_s": seen / seconds, "seconds": seconds, "images": seen}


def seed_data_rate(loader: DataLoader, *, batches: int, warmup: int = 1) -> dict:
    """img/s of the DataLoader alone (decode + transforms + collate). Workers prefetch
    prefetch_factor x workers batches during the warm-up; at least 4x that many are timed so
    the prefetched ones do not make the seed look faster than it is."""
    source = _batches(loader)
    for _ in range(warmup):
        next(source)
    batches = max(batches, 4 * loader.num_workers * (loader.prefetch_factor or 0))
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        seen += len(next(source)[1])
    seconds = time.perf_counter() - start
    return {"img_per_s": seen / seconds, "seconds": seconds, "images": seen}


def seed_eval_transform(size: int):
    """The seed's inference preprocessing: Resize, ToTensor, Normalize on a 3-channel PIL image."""
    return transforms.Compose(
        [transforms.Resize((size, size)), transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )


def seed_model(seed: int = 0) -> nn.Module:
    """The seed's network as it served: 3-channel fp32 NCHW ResNet18, eval mode."""
    torch.manual_seed(seed)
    return resnet18(num_classes=2).eval()


@torch.no_grad()
def seed_predict(model: nn.Module, image, transform) -> float:
    """One request the seed's Gradio way: open (a path or file object) → RGB → transform → fp32
    forward → softmax → P(class 1)."""
    x = transform(Image.open(image).convert("RGB")).unsqueeze(0)
    return float(torch.softmax(model(x), dim=1)[0, 1])
