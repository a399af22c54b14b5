"""Does the model look at bone or at the data's artefacts? Grad-CAM on the honest test split.

    python scripts/crossfit_quality.py export --data-dir DIR --out s.npz   # the data file
    python scripts/gradcam_check.py --packed s.npz --out cams/ [--epochs 30 --lr 3e-3]

Trains one model on the data file's train split (random init, core `fit`, early stopping on
val), then for every test image computes Grad-CAM of the "fractured" logit
(boneflow.evaluate.gradcam, as the app shows it) and measures how much of the map falls in the
outer border frame (where the black corners of rotated copies, the padding and the "L"/"R" side
markers sit) compared with the frame's share of the area. Writes `gradcam_sheet.png` (the first
24 test images with their maps) and prints one JSON object: the border share of CAM mass (mean,
and per true class), the fraction of images whose CAM peak lies in the frame, and the frame's
share of the area.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

BORDER = 0.12  # frame width as a fraction of the side


def main() -> None:
    from PIL import Image

    from boneflow.evaluate.gradcam import GradCAM, overlay_heatmap
    from boneflow.settings import TrainSettings
    from boneflow.splits.packed import InMemorySplits, SplitArrays
    from boneflow.train.augment import EvalPreset
    from boneflow.train.fit import fit

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packed", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = np.load(args.packed)
    size, split = int(data["size"]), data["split"]
    parts = {s: split == s for s in ("train", "val", "test")}
    splits = {s: SplitArrays(data["images"][rows], data["labels"][rows], []) for s, rows in parts.items()}
    settings = TrainSettings(
        pretrained=False,
        epochs=args.epochs,
        patience=args.patience,
        lr=args.lr,
        image_size=args.image_size,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory() as tmp:
        model = fit(InMemorySplits(splits, size), settings, checkpoint_dir=Path(tmp)).model
    model.eval()
    device = next(model.parameters()).device
    preset = EvalPreset(crop_size=args.image_size)
    cam_of = GradCAM(model=model)
    images, labels = splits["test"].images, splits["test"].labels
    maps, crops = [], []
    top = (size - args.image_size) // 2
    for start in range(0, len(images), 32):
        batch = np.asarray(images[start : start + 32])
        _, cam = cam_of(preset(batch).to(device), class_index=1)
        maps.append(cam.cpu().numpy())
        crops.append(batch[:, top : top + args.image_size, top : top + args.image_size])
    cams, crops = np.concatenate(maps), np.concatenate(crops)
    side = cams.shape[-1]
    k = int(round(side * BORDER))
    frame = np.ones((side, side), bool)
    frame[k:-k, k:-k] = False
    flat = cams.reshape(len(cams), -1)
    border_share = cams[:, frame].sum(1) / np.maximum(flat.sum(1), 1e-12)
    peak_in_frame = frame.reshape(-1)[flat.argmax(1)]
    sheet = Image.new("RGB", (side * 6, side * 4))
    for i in range(min(24, len(cams))):
        tile = Image.fromarray(overlay_heatmap(crops[i], cams[i]))
        sheet.paste(tile, ((i % 6) * side, (i // 6) * side))
    sheet.save(args.out / "gradcam_sheet.png")
    report = {
        "n_test": int(len(cams)),
        "border_frame_px": k,
        "frame_area_share": round(float(frame.mean()), 3),
        "cam_mass_in_frame": round(float(border_share.mean()), 3),
        "cam_mass_in_frame_fractured": round(float(border_share[labels == 1].mean()), 3),
        "cam_mass_in_frame_not_fractured": round(float(border_share[labels == 0].mean()), 3),
        "peak_in_frame_share": round(float(peak_in_frame.mean()), 3),
        "settings": settings.to_dict() | {"device": str(device)},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
