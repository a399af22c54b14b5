"""The app's examples: held-out test images saved with the run at publish, shown with their
true labels; synthetic drawings only for a store whose champion has none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from boneflow.demo.store import write_demo_store
from boneflow.registry.publish import publish_run, read_manifest
from boneflow.serve.examples import (
    EXAMPLES_INDEX,
    SYNTHETIC_TITLE,
    run_examples,
    write_run_examples,
)
from boneflow.splits.packed import InMemorySplits, SplitArrays
from boneflow.store import open_store


def packed_with_test(n_fractured: int, n_intact: int, *, size: int = 40) -> InMemorySplits:
    labels = np.array([1] * n_fractured + [0] * n_intact, dtype=np.int64)
    images = np.stack([np.full((size, size), 10 * i % 256, dtype=np.uint8) for i in range(len(labels))])
    paths = [f"test/{'fractured' if y else 'not fractured'}/{i}.jpg" for i, y in enumerate(labels)]
    split = SplitArrays(images=images, labels=labels, paths=paths)
    train = SplitArrays(images=images[:2], labels=labels[:2], paths=paths[:2])
    return InMemorySplits(splits={"train": train, "test_clean": split}, size=size)


def test_examples_are_judged_test_images_of_both_classes_with_their_labels(tmp_path):
    packed = packed_with_test(5, 7)
    files = write_run_examples(packed, tmp_path, seed=0)
    index = json.loads(files[EXAMPLES_INDEX].read_text())
    assert index["split"] == "test_clean"
    entries = index["examples"]
    assert [e["label"] for e in entries] == ["not fractured", "fractured"] * 3  # 3 per class, alternating
    test = packed.split("test_clean")
    for entry in entries:
        row = test.paths.index(entry["source"])
        saved = np.asarray(Image.open(tmp_path / "examples" / entry["file"]))
        assert np.array_equal(saved, test.images[row])  # the packed pixels, no file metadata
        assert entry["label"] == packed.classes[test.labels[row]]
    again = json.loads(write_run_examples(packed, tmp_path / "again", seed=0)[EXAMPLES_INDEX].read_text())
    assert again == index  # a retried publish writes the same examples


@pytest.mark.parametrize("n_fractured,expected", [(0, 3), (1, 4), (3, 6), (4, 6)])
def test_a_class_short_of_images_gives_what_it_has(tmp_path, n_fractured, expected):
    files = write_run_examples(packed_with_test(n_fractured, 9), tmp_path, seed=1)
    assert len(json.loads(files[EXAMPLES_INDEX].read_text())["examples"]) == expected


def test_a_pack_without_a_test_split_gives_no_examples(tmp_path):
    packed = packed_with_test(3, 3)
    packed.splits.pop("test_clean")
    assert write_run_examples(packed, tmp_path, seed=0) == {}


@pytest.fixture
def store_with_examples(tmp_path) -> tuple[str, str]:
    store_url = str(tmp_path / "store")
    run_id = write_demo_store(store_url, image_size=64, seed=0)
    files = write_run_examples(packed_with_test(4, 4), tmp_path / "out", seed=0)
    publish_run(open_store(store_url), run_id, files, code_version={})  # the run's manifest now lists them
    return store_url, run_id


def test_the_app_shows_the_runs_examples_when_present(store_with_examples, tmp_path, monkeypatch):
    from boneflow.serve.app import prepare_app

    store_url, run_id = store_with_examples
    got = run_examples(open_store(store_url), run_id, tmp_path / "fetched")
    assert got is not None and got.labels == ["not fractured", "fractured"] * 3
    assert run_id in got.title and all(p.is_file() for p in got.paths)

    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    demo, _ = prepare_app(store_url)
    samples = _example_samples(demo)
    assert [label for _image, label in samples] == got.labels
    shown = [Path(_path_of(image)).read_bytes() for image, _label in samples]
    assert shown == [p.read_bytes() for p in got.paths]  # the run's own files, in its order
    assert _examples_label(demo) == got.title


def test_a_store_without_run_examples_falls_back_to_synthetic_ones(tmp_path, monkeypatch):
    from boneflow.serve.app import prepare_app

    store_url = str(tmp_path / "store")
    run_id = write_demo_store(store_url, image_size=64, seed=0)
    assert EXAMPLES_INDEX not in read_manifest(open_store(store_url), run_id)["files"]
    assert run_examples(open_store(store_url), run_id, tmp_path / "fetched") is None
    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    demo, _ = prepare_app(store_url)
    assert _examples_label(demo) == SYNTHETIC_TITLE
    assert {label for _image, label in _example_samples(demo)} == {"fractured", "not fractured"}


def _datasets(demo):
    import gradio as gr

    return [block for block in demo.blocks.values() if isinstance(block, gr.Dataset)]


def _example_samples(demo) -> list:
    (dataset,) = _datasets(demo)
    return dataset.samples


def _examples_label(demo) -> str:
    (dataset,) = _datasets(demo)
    return dataset.label


def _path_of(image) -> str:
    return image["path"] if isinstance(image, dict) else str(image)
