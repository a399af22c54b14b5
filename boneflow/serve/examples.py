"""Example images for the app (README, "Serving the champion"): held-out test images saved
with the champion's run at publish (`write_run_examples`; `run_examples` fetches them
sha256-checked, as listed in the run's manifest), else drawings by the demo dataset's drawer
(`write_examples`), which show how the app behaves but are not radiographs."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import numpy as np
from PIL import Image

from boneflow.demo.bones import draw_radiograph
from boneflow.intake.layout import CLASSES
from boneflow.registry.publish import fetch_run_file, read_manifest
from boneflow.splits.packed import PackedSplits

log = logging.getLogger(__name__)

EXAMPLES_FOLDER = "examples"  # inside a run: runs/<run_id>/examples/
EXAMPLES_INDEX = f"{EXAMPLES_FOLDER}/examples.json"
EXAMPLES_PER_CLASS = 3
JUDGED_SPLITS = ("test_clean", "test")  # the split the gate judged; "test" for packs without it
SYNTHETIC_TITLE = "Examples (synthetic): drawings, not radiographs"


@dataclass(frozen=True)
class AppExamples:
    paths: list[Path]
    labels: list[str]  # the true label of each image, shown beside it
    title: str


def write_examples(folder: Path, *, size: int = 256) -> list[Path]:
    """Write two fractured and two intact `size` x `size` examples as PNG; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, fractured in enumerate((True, False, True, False)):
        path = folder / f"example-{i + 1}-{'fractured' if fractured else 'intact'}.png"
        picture = draw_radiograph(np.random.default_rng(i), fractured=fractured, width=size, height=size)
        Image.fromarray(picture).save(path)
        paths.append(path)
    return paths


def synthetic_examples(folder: Path) -> AppExamples:
    paths = write_examples(folder)
    labels = [CLASSES[1] if "-fractured" in p.name else CLASSES[0] for p in paths]
    return AppExamples(paths=paths, labels=labels, title=SYNTHETIC_TITLE)


def write_run_examples(packed: PackedSplits, out_dir: Path, *, seed: int) -> dict[str, Path]:
    """PNG files of up to EXAMPLES_PER_CLASS images of each class from the judged test split, and
    examples.json; returns {name inside the run folder: local path}, {} when the pack has no
    test split. The choice is fixed by `seed`, so a retried publish writes the same files."""
    split_name = next((s for s in JUDGED_SPLITS if s in packed.split_names()), None)
    if split_name is None:
        return {}
    split = packed.split(split_name)
    rng = np.random.default_rng(seed)
    chosen = {
        label: rng.permutation(np.flatnonzero(np.asarray(split.labels) == label))[:EXAMPLES_PER_CLASS].tolist()
        for label in range(len(packed.classes))
    }
    # alternate the classes; a class with fewer images simply ends early
    rows = [row for group in zip_longest(*chosen.values()) for row in group if row is not None]
    folder = Path(out_dir) / EXAMPLES_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    files, entries = {}, []
    for i, row in enumerate(rows, start=1):
        name = f"example-{i}.png"
        Image.fromarray(np.asarray(split.images[row], dtype=np.uint8)).save(folder / name)
        files[f"{EXAMPLES_FOLDER}/{name}"] = folder / name
        source = split.paths[row] if split.paths else None
        entries.append({"file": name, "label": packed.classes[int(split.labels[row])], "source": source})
    (folder / "examples.json").write_text(json.dumps({"split": split_name, "examples": entries}, indent=2))
    files[EXAMPLES_INDEX] = folder / "examples.json"
    return files


def run_examples(store, run_id: str, folder: Path) -> AppExamples | None:
    """The examples published with run `run_id`, downloaded into `folder` and checked against
    its manifest; None when the run has none (published before runs carried examples) or they
    cannot be read (the app then falls back to the synthetic ones)."""
    try:
        manifest = read_manifest(store, run_id)
        if EXAMPLES_INDEX not in manifest["files"]:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        index = json.loads(fetch_run_file(store, run_id, EXAMPLES_INDEX, folder, manifest=manifest).read_text())
        labels = [str(entry["label"]) for entry in index["examples"]]
        names = [f"{EXAMPLES_FOLDER}/{entry['file']}" for entry in index["examples"]]
        paths = [fetch_run_file(store, run_id, name, folder, manifest=manifest) for name in names]
    except Exception as err:  # examples are decoration: never block serving the model
        log.warning("the examples of run %s in %s are unavailable (%s); showing synthetic ones", run_id, store.url, err)
        return None
    if not paths:
        return None
    return AppExamples(paths=paths, labels=labels, title=f"Examples: held-out test images of run {run_id}")
