"""`boneflow bench prep` / `bench train` / `bench infer` print one JSON object with ours, the
seed-style baseline and their ratios (tiny sizes: the shape of the output is tested, never the
timings)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from boneflow.cli.main import app
from boneflow.demo.dataset import write_demo_dataset
from conftest_data import tree_digest


def _run(args: list[str]) -> dict:
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(app, args)
    finally:
        torch.set_num_threads(threads)  # --threads is process-wide
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _positive_finite(value) -> bool:
    """A ratio against the baseline: a real number, above 0, neither inf nor nan."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """A 40-image demo set with no defects: every file is kept."""
    path = tmp_path_factory.mktemp("bench-prep")
    write_demo_dataset(path, n=40, seed=1, defects=False)
    return path


@pytest.mark.parametrize("limit", [0, 25])
def test_bench_prep_validates_audits_and_packs_without_touching_the_source(tiny_set, limit):
    before = tree_digest(tiny_set)
    out = _run(
        ["bench", "prep", "--data-dir", str(tiny_set), "--limit", str(limit), "--workers", "1", "--pack-size", "64"]
    )
    assert tree_digest(tiny_set) == before
    images = limit or 40
    assert out["images"] == images and out["pack_size"] == 64
    assert out["ours"]["kept"] == images and out["seed_style"]["decoded"] == images
    assert set(out) == {"images", "cpus", "pack_size", "ours", "seed_style", "ratio"}
    assert {"seconds", "images_per_s", "kept"} <= set(out["ours"])
    assert {"seconds", "images_per_s", "decoded"} <= set(out["seed_style"])
    assert out["ours"]["seconds"] > 0 and out["seed_style"]["seconds"] > 0 and _positive_finite(out["ratio"])


def test_bench_train_prints_ours_seed_and_ratios():
    out = _run(
        [
            "bench",
            "train",
            "--images",
            "16",
            "--size",
            "32",
            "--batch-size",
            "4",
            "--steps",
            "1",
            "--data-batches",
            "1",
            "--seed-workers",
            "0",
        ]
    )
    assert out["benchmark"] == "train" and out["size"] == 32 and out["seed_dataloader_workers"] == 0
    for side in ("ours", "seed"):
        assert out[side]["train_img_per_s"] > 0 and out[side]["data_img_per_s"] > 0
    assert out["ours"]["channels"] == 1 and out["seed"]["channels"] == 3
    assert {"benchmark", "images", "size", "batch_size", "steps", "data_supply", "ours", "seed", "goals"} <= set(out)
    assert _positive_finite(out["train_ratio"]) and _positive_finite(out["data_ratio"])
    assert set(out["goals"]) == {"train_ratio", "data_ratio"}
    assert "num_workers=0" in out["data_supply"]["seed"]


def test_bench_infer_prints_ours_seed_ratios_and_app(tmp_path, monkeypatch):
    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    out = _run(
        [
            "bench",
            "infer",
            "--size",
            "32",
            "--runs",
            "5",
            "--batch-size",
            "2",
            "--batches",
            "1",
            "--threads",
            "1",
            "--no-compare-threads",
            "--members",
            "3",
        ]
    )
    assert out["benchmark"] == "infer" and out["size"] == 32 and out["torch_threads"] == 1
    single = out["single_image"]
    for side in ("ours", "seed"):
        for path in ("preprocessed", "with_jpeg_decode"):
            assert 0 < single[side][path]["p50_ms"] <= single[side][path]["p95_ms"]
    assert {"benchmark", "size", "single_image", "single_image_by_threads", "batch", "goals", "app", "ensemble"} <= set(
        out
    )
    assert _positive_finite(single["p50_ratio_with_decode"]) and _positive_finite(single["p50_ratio_preprocessed"])
    assert list(out["single_image_by_threads"]) == ["1"]
    assert out["batch"]["ours_img_per_s"] > 0 and out["batch"]["seed_img_per_s"] > 0
    assert _positive_finite(out["batch"]["ratio"])
    assert 0 < out["app"]["p50_ms"] <= out["app"]["p95_ms"] and out["app"]["image_size"] == 32
    assert set(out["goals"]) == {"single_p50_ms", "app_p50_ms", "ensemble_p50_ratio", "ensemble_app_p50_ratio"}
    ensemble = out["ensemble"]  # the fold ensemble beside one member, from the same run
    assert ensemble["members"] == 3 and ensemble["threads"] == 1
    for side in ("single_member", "ensemble", "app_single_model", "app_ensemble"):
        assert 0 < ensemble[side]["p50_ms"] <= ensemble[side]["p95_ms"], side
    assert ensemble["app_single_model"]["members"] == 1 and ensemble["app_ensemble"]["members"] == 3
    assert _positive_finite(ensemble["p50_ratio"]) and _positive_finite(ensemble["app_p50_ratio"])


def test_bench_infer_members_1_leaves_the_ensemble_out(tmp_path, monkeypatch):
    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    args = ["bench", "infer", "--size", "32", "--runs", "5", "--batch-size", "1", "--batches", "1"]
    out = _run([*args, "--threads", "1", "--no-compare-threads", "--no-app", "--members", "1"])
    assert "ensemble" not in out and set(out["goals"]) == {"single_p50_ms", "app_p50_ms"}
    refused = CliRunner().invoke(app, [*args, "--members", "11"])
    assert refused.exit_code != 0 and "--members" in refused.output
