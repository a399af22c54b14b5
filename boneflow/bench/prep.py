"""bench prep: our data preparation vs the seed notebook's, on the same files, in one process.

Ours: validate (one reduced-size decode per file in a process pool, hashes included) + leakage
audit + pack into memory-mapped arrays. Seed-style: PIL open + verify of every file, then for
every file that verified a full decode, RGB convert, Resize((224, 224)) and ToTensor through a
DataLoader, as torchvision's ImageFolder does in the first epoch.

With `limit`, the chosen files are copied into a temporary folder first (not timed); without
it, the dataset is read where it lies. Nothing is written to the source.

Ours runs first, before torch is imported, so its peak RSS is not inflated by torch; the
workers report their own peak RSS (they are forkserver children, invisible to RUSAGE_CHILDREN).
Peak for ours = parent peak + workers x largest worker peak (an upper bound: peaks need not coincide).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from boneflow.intake.layout import CLASSES, scan_layout


def _maxrss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: kB


def _subset(root: Path, relpaths: list[str], dest: Path) -> Path:
    """A limited copy of the dataset: the chosen files copied (bytes only) into `dest`. Not
    symlinks: validation follows no link that leaves the dataset root, so a view made of links
    to the source would be an empty dataset; not hard links: they would touch the source's
    inodes (link count, ctime), and the source is read-only to boneflow."""
    for rel in relpaths:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, target)
    for split in ("train", "val", "test"):
        for cls in CLASSES:
            (dest / split / cls).mkdir(parents=True, exist_ok=True)
    return dest


def _seed_style(paths: list[Path]) -> dict:
    import torch
    from PIL import Image
    from torchvision import transforms

    t0 = time.perf_counter()
    ok = []
    for p in paths:
        with contextlib.suppress(Exception), Image.open(p) as im:
            im.verify()
            ok.append(p)
    tfm = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor()])

    class Files(torch.utils.data.Dataset):
        def __len__(self):
            return len(ok)

        def __getitem__(self, i):
            try:
                return tfm(Image.open(ok[i]).convert("RGB"))
            except Exception:  # the seed crashed here on truncated files; we just count them
                return torch.zeros(3, 224, 224)

    loader = torch.utils.data.DataLoader(Files(), batch_size=32, num_workers=0)
    decoded = sum(len(batch) for batch in loader)
    return {"images": len(paths), "decoded": decoded, "seconds": time.perf_counter() - t0}


def run_prep_bench(data_dir: Path, *, limit: int = 0, workers: int = 0, pack_size: int = 256) -> dict:
    from boneflow.duplicates.leakage import audit_leakage
    from boneflow.intake.validate import validate_dataset
    from boneflow.splits.pack import pack_dataset

    layout = scan_layout(Path(data_dir))
    rels = [e.relpath for e in layout.entries]
    if limit:
        step = max(1, len(rels) // limit)  # spread over splits and classes
        rels = rels[::step][:limit]
    tmp = Path(tempfile.mkdtemp(prefix="boneflow-bench-"))
    try:
        # the whole set is read where it lies; a --limit subset is copied (outside the timing)
        root = _subset(layout.root, rels, tmp / "data") if limit else layout.root
        t0 = time.perf_counter()
        validated = validate_dataset(root, workdir=tmp / "work", pack_size=pack_size, workers=workers)
        audit = audit_leakage(validated)
        pack_dataset(validated, audit, out_dir=tmp / "packed")
        ours_s = time.perf_counter() - t0
        ours_rss_self, ours_rss_children = _maxrss_mb(resource.RUSAGE_SELF), validated.worker_peak_rss_mb
        seed = _seed_style([root / r for r in rels])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = len(rels)
    return {
        "images": n,
        "cpus": os.cpu_count(),
        "pack_size": pack_size,
        "ours": {
            "seconds": round(ours_s, 3),
            "images_per_s": round(n / ours_s, 1),
            "kept": validated.report["counts"]["kept"],
            "peak_rss_mb_parent": round(ours_rss_self, 1),
            "peak_rss_mb_largest_worker": round(ours_rss_children, 1),
            "peak_rss_mb_total_bound": round(ours_rss_self + ours_rss_children * (workers or os.cpu_count() or 1), 1),
        },
        "seed_style": {
            "seconds": round(seed["seconds"], 3),
            "images_per_s": round(n / seed["seconds"], 1),
            "decoded": seed["decoded"],
            "dataloader_workers": 0,
            "peak_rss_mb_process": round(_maxrss_mb(resource.RUSAGE_SELF), 1),
        },
        "ratio": round(seed["seconds"] / ours_s, 2),
    }
