"""Training loop: packed uint8 arrays → batch augmentation on the device → ResNet18, with
per-epoch atomic checkpoints, resume, early stopping and best-by-val weights. The GPU script
uses it, so it imports nothing beyond torch, numpy, pillow and the standard library
(tests/unit/test_gpu_script.py checks).

Determinism: the model init uses `torch.manual_seed(seed)`; each epoch's data order and
augmentation come from a generator seeded with (seed, epoch), so a resumed run draws exactly
what the uninterrupted run would have drawn, without having to restore generator state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from boneflow.errors import BoneflowError
from boneflow.settings import TrainSettings, pack_size_for
from boneflow.splits.packed import PackedSplits, SplitArrays
from boneflow.train.augment import EvalPreset, TrainPreset, numpy_to_tensor
from boneflow.train.checkpoint import checkpoint_path, latest_checkpoint, save_checkpoint
from boneflow.train.device import autocast, fast_layout, optimizer_speed, place_model, resolve_device, use_bf16
from boneflow.train.model import build_model, plain_state_dict

# Settings that shape the training trajectory: a checkpoint written under other values cannot
# be resumed as "the same run".
_RESUME_MUST_MATCH = (
    "image_size",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "label_smoothing",
    "patience",
    "seed",
    "pretrained",
)


@dataclass
class TrainResult:
    model: nn.Module  # best-by-val weights, eval mode, on the training device
    history: list[dict]  # one dict per epoch (the on_epoch stats)
    best_epoch: int
    epochs_run: int  # epochs completed in total, including those before a resume
    resumed_from_epoch: int | None  # epoch of the checkpoint resumed from, None for a fresh run
    seconds: float  # wall time of this call


class SplitOnDevice:
    """A packed split ready for batch gathering. On CUDA the whole uint8 split is moved to the
    GPU once; on CPU the (memory-mapped) array stays put and each batch is a fancy-index copy."""

    def __init__(self, split: SplitArrays, device: torch.device) -> None:
        labels = np.asarray(split.labels, dtype=np.int64)
        self.n, self.device = len(labels), device
        self.labels = torch.from_numpy(labels).to(device)
        self.images: np.ndarray | torch.Tensor
        if device.type == "cpu":
            self.images = split.images
        else:
            self.images = numpy_to_tensor(np.asarray(split.images)).to(device)

    def epoch_order(self, generator: torch.Generator) -> np.ndarray | torch.Tensor:
        """A seeded permutation; on CUDA uploaded once per epoch (not one sync per batch)."""
        order = torch.randperm(self.n, generator=generator)
        return order.numpy() if self.device.type == "cpu" else order.to(self.device)

    def batch(self, index: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.images, torch.Tensor):
            where = index if isinstance(index, torch.Tensor) else torch.from_numpy(index).to(self.device)
            return self.images[where], self.labels[where]
        index = np.sort(index)  # sequential reads from the memmap; order inside a batch is irrelevant
        return numpy_to_tensor(self.images[index]), self.labels[torch.from_numpy(index)]


def steps_per_epoch(n: int, batch_size: int) -> int:
    # Drop the ragged last batch (a batch of one breaks BatchNorm at small sizes); the per-epoch
    # permutation means every image is still seen.
    return max(1, n // batch_size)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def train_one_epoch(
    model: nn.Module,
    data: SplitOnDevice,
    *,
    preset: TrainPreset,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    criterion: nn.Module,
    batch_size: int,
    generator: torch.Generator,
    bf16: bool,
    max_steps: int | None = None,
) -> dict:
    """One pass over a seeded permutation. Returns loss, acc, images, steps, seconds, img_per_s."""
    model.train()
    device = data.device
    start = time.perf_counter()
    order = data.epoch_order(generator)
    steps = steps_per_epoch(data.n, batch_size)
    if max_steps is not None:
        steps = min(steps, max_steps)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for step in range(steps):
        images, labels = data.batch(order[step * batch_size : (step + 1) * batch_size])
        x = fast_layout(preset(images, generator))
        with autocast(device, bf16):
            logits = model(x)
        loss = criterion(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        # Accumulate on the device: no host sync per step.
        loss_sum += loss.detach() * len(labels)
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += len(labels)
    seconds = time.perf_counter() - start
    return {
        "loss": float(loss_sum) / max(seen, 1),
        "acc": int(correct) / max(seen, 1),
        "images": seen,
        "steps": steps,
        "seconds": seconds,
        "img_per_s": seen / seconds if seconds > 0 else float("nan"),
    }


@torch.no_grad()
def evaluate(model: nn.Module, data: SplitOnDevice, *, preset: EvalPreset, batch_size: int, bf16: bool) -> dict:
    """Unweighted, unsmoothed cross-entropy and accuracy over the whole split, in order."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, data.n, batch_size):
        images, labels = data.batch(np.arange(start, min(start + batch_size, data.n)))
        x = fast_layout(preset(images))
        with autocast(data.device, bf16):
            logits = model(x).float()
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(1) == labels).sum())
    return {"loss": loss_sum / max(data.n, 1), "acc": correct / max(data.n, 1), "n": data.n}


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, mean 1 over the samples (a class with no samples gets 1)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def make_optimizer(model: nn.Module, settings: TrainSettings, device: torch.device) -> torch.optim.AdamW:
    # No weight decay on BatchNorm parameters and biases (1-d tensors): decaying them only hurts.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=settings.lr, **optimizer_speed(device))


def make_scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings, steps: int):
    """One-cycle (25 % warm-up, cosine down). OneCycleLR needs at least two warm-up steps; runs
    shorter than 4 steps in total keep a constant learning rate."""
    total = settings.epochs * steps
    if total < 4:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.lr, total_steps=total, pct_start=max(0.25, 2.0 / total)
    )


@dataclass
class RunState:
    """What carries from one epoch to the next, and through a checkpoint to a resumed run."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=dict)  # {"state": weights, "val_loss": float, "epoch": int}
    bad_epochs: int = 0  # epochs since the best val loss, for early stopping
    resumed_from: int | None = None

    def stopped(self, patience: int) -> bool:
        return patience > 0 and self.bad_epochs >= patience

    def record(self, model: nn.Module, val_loss: float) -> None:
        """Keep the weights when val loss improved, else count a bad epoch."""
        if val_loss < self.best["val_loss"]:
            self.best = {"state": plain_state_dict(model), "val_loss": val_loss, "epoch": self.epoch}
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1


def resume_or_start(
    checkpoint_dir: Path, settings: TrainSettings, model: nn.Module, optimizer: Any, scheduler: Any
) -> RunState:
    """A fresh state, or the newest complete checkpoint loaded into model, optimizer and scheduler."""
    found = latest_checkpoint(checkpoint_dir)
    if found is None:
        return RunState(best={"state": plain_state_dict(model), "val_loss": math.inf, "epoch": 0})
    path, saved = found
    written, current = saved["settings"], settings.to_dict()
    for name in _RESUME_MUST_MATCH:
        if written.get(name) != current.get(name):
            raise BoneflowError(
                f"{path}: checkpoints were written with {name}={written.get(name)!r} but this run "
                f"has {name}={current.get(name)!r}. Resume with the same settings, or use a new run id "
                "(an empty checkpoint directory) to start over."
            )
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"]["torch"])
    epoch = int(saved["epoch"])
    return RunState(
        epoch=epoch,
        history=list(saved["history"]),
        best=saved["best"],
        bad_epochs=int(saved["early_stop_counter"]),
        resumed_from=epoch,
    )


def checkpoint_dict(
    state: RunState,
    model: nn.Module,
    optimizer: Any,
    scheduler: Any,
    settings: TrainSettings,
    device: torch.device,
    bf16: bool,
) -> dict:
    """Everything a resume needs, as tensors and plain types (weights_only loading allows no more)."""
    return {
        "model": plain_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": state.epoch,
        "settings": settings.to_dict(),
        "history": state.history,
        "best": state.best,
        "early_stop_counter": state.bad_epochs,
        "rng": {"torch": torch.get_rng_state(), "data": f"torch.Generator seeded {settings.seed}*1000003+epoch"},
        "device": str(device),
        "precision": "bf16" if bf16 else "fp32",
    }


def _checked_splits(packed: PackedSplits, settings: TrainSettings) -> tuple[SplitArrays, SplitArrays]:
    if packed.size < settings.image_size:
        raise BoneflowError(
            f"packed images are {packed.size} px but image_size={settings.image_size}: pack at "
            f"{pack_size_for(settings.image_size)} px or lower image_size."
        )
    train_split, val_split = packed.split("train"), packed.split("val")
    if len(train_split.labels) == 0 or len(val_split.labels) == 0:
        raise BoneflowError(
            f"train has {len(train_split.labels)} and val {len(val_split.labels)} images; both must be non-empty."
        )
    return train_split, val_split


def _training_parts(
    settings: TrainSettings, train_labels: np.ndarray, num_classes: int, device: torch.device
) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer, Any]:
    """Seeded model, loss, optimizer and schedule. The seed goes right before model init and a
    resume restores the RNG after it, so both paths draw the same numbers from here on."""
    torch.manual_seed(settings.seed)
    model = build_model(num_classes=num_classes, pretrained=settings.pretrained, weights_path=settings.weights_path)
    model = place_model(model, device)
    criterion = nn.CrossEntropyLoss(
        weight=class_weights(train_labels, num_classes).to(device) if settings.class_weighted else None,
        label_smoothing=settings.label_smoothing,
    )
    optimizer = make_optimizer(model, settings, device)
    scheduler = make_scheduler(optimizer, settings, steps_per_epoch(len(train_labels), settings.batch_size))
    return model, criterion, optimizer, scheduler


def fit(
    packed: PackedSplits,
    settings: TrainSettings,
    *,
    checkpoint_dir: Path,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train on packed.split("train"), select on packed.split("val"); resume from checkpoint_dir."""
    started = time.perf_counter()
    device = resolve_device(settings.device)
    bf16 = use_bf16(device)
    train_split, val_split = _checked_splits(packed, settings)

    model, criterion, optimizer, scheduler = _training_parts(settings, train_split.labels, len(packed.classes), device)
    state = resume_or_start(checkpoint_dir, settings, model, optimizer, scheduler)

    forward = cast(nn.Module, torch.compile(model)) if settings.compile else model
    train_preset = TrainPreset(
        crop_size=settings.image_size, degrees=settings.rotation_degrees, scale=(settings.crop_min_area, 1.0)
    )
    eval_preset = EvalPreset(crop_size=settings.image_size)
    train_data, val_data = SplitOnDevice(train_split, device), SplitOnDevice(val_split, device)

    while state.epoch < settings.epochs and not state.stopped(settings.patience):
        state.epoch += 1
        lr = optimizer.param_groups[0]["lr"]
        trained = train_one_epoch(
            forward,
            train_data,
            preset=train_preset,
            optimizer=optimizer,
            scheduler=scheduler,
            criterion=criterion,
            batch_size=settings.batch_size,
            generator=epoch_generator(settings.seed, state.epoch),
            bf16=bf16,
        )
        validated = evaluate(forward, val_data, preset=eval_preset, batch_size=256, bf16=bf16)
        state.record(model, validated["loss"])
        stats = {
            "epoch": state.epoch,
            "epochs": settings.epochs,
            "train_loss": trained["loss"],
            "train_acc": trained["acc"],
            "val_loss": validated["loss"],
            "val_acc": validated["acc"],
            "seconds": trained["seconds"],
            "img_per_s": trained["img_per_s"],
            "lr": lr,
            "best_epoch": state.best["epoch"],
            "checkpoint": str(checkpoint_path(checkpoint_dir, state.epoch)),
        }
        state.history.append(stats)
        save_checkpoint(checkpoint_dict(state, model, optimizer, scheduler, settings, device, bf16), checkpoint_dir)
        if on_epoch is not None:
            on_epoch(dict(stats))

    model.load_state_dict(state.best["state"])
    model.eval()
    return TrainResult(
        model=model,
        history=state.history,
        best_epoch=int(state.best["epoch"]),
        epochs_run=state.epoch,
        resumed_from_epoch=state.resumed_from,
        seconds=time.perf_counter() - started,
    )
