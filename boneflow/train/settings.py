"""Training settings as a plain dataclass: the view of `RetrainConfig` that the training core
needs, and the one place its defaults are written (RetrainConfig's training fields take theirs
from here). It imports nothing but the standard library, so the GPU benchmark can build one on a
machine with only torch installed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainSettings:
    image_size: int = 224  # side of the crop the network sees; packed images are 8/7 larger
    epochs: int = 12  # maximum epochs; early stopping may end sooner
    batch_size: int = 64  # images per optimizer step
    lr: float = 1e-3  # peak learning rate of the one-cycle schedule
    weight_decay: float = 0.05  # AdamW decoupled weight decay
    label_smoothing: float = 0.05  # softens targets; helps calibration (ECE)
    rotation_degrees: float = 10.0  # training rotation drawn from [-d, d]
    crop_min_area: float = 0.6  # random resized crop covers this much of the image area, at least
    class_weighted: bool = True  # weight the loss by inverse class frequency of the train split
    patience: int = 4  # epochs without val-loss improvement before stopping; 0 = never
    seed: int = 0  # seeds init, data order and augmentation
    pretrained: bool = True  # start from ImageNet weights (local file / hub cache only)
    weights_path: Path | None = None  # explicit .pth for ImageNet weights
    compile: bool = False  # torch.compile the model
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def to_dict(self) -> dict:
        out = asdict(self)
        out["weights_path"] = str(self.weights_path) if self.weights_path else None
        return out
