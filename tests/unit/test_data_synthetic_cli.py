"""Demo data determinism and the `boneflow audit` / `demo-data` commands end to end."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from boneflow.cli.main import app
from boneflow.demo.dataset import write_demo_dataset
from conftest_data import tree_digest


def test_demo_data_is_deterministic(tmp_path):
    a = write_demo_dataset(tmp_path / "a", n=25, seed=7)
    b = write_demo_dataset(tmp_path / "b", n=25, seed=7)
    c = write_demo_dataset(tmp_path / "c", n=25, seed=8)
    assert a == b
    assert tree_digest(tmp_path / "a" / a["root"]) == tree_digest(tmp_path / "b" / b["root"])
    assert tree_digest(tmp_path / "a" / a["root"]) != tree_digest(tmp_path / "c" / c["root"])


def test_demo_layout_split_and_class_mix(tmp_path):
    planted = write_demo_dataset(tmp_path, n=200, seed=1, defects=False)
    root = tmp_path / planted["root"]
    assert root.parts[-2:] == ("Bone_Fracture_Binary_Classification",) * 2
    splits = [im["split"] for im in planted["images"]]
    assert 0.6 < splits.count("train") / 200 < 0.8 and splits.count("val") > 15 and splits.count("test") > 15
    frac = sum(im["label"] for im in planted["images"]) / 200
    assert 0.3 < frac < 0.5
    assert not (tmp_path / planted["root"] / "planted.json").exists() and (tmp_path / "planted.json").exists()
    assert planted["duplicates"] == []  # without defects, every image is distinct


def test_demo_data_command(tmp_path):
    result = CliRunner().invoke(app, ["demo-data", str(tmp_path / "d"), "--n", "30", "--seed", "2"])
    assert result.exit_code == 0, result.output
    planted = json.loads((tmp_path / "d" / "planted.json").read_text())
    assert planted["n"] == 30
    rotated = sum(d["kind"] == "rotated" for d in planted["duplicates"])
    turned = sum(d["kind"] == "turned" for d in planted["duplicates"])
    assert rotated >= 2 and turned >= 2 and f"{rotated} rotated and {turned} large-angle turned copies" in result.output


def test_audit_command_reports_every_planted_defect_and_copy(demo, tmp_path):
    path, planted = demo
    before = tree_digest(path)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["audit", "--data-dir", str(path), "--out", str(out), "--workers", "2", "--max-distance", "26"]
    )
    assert result.exit_code == 0, result.output
    assert "excluded: truncated" in result.output and "cross-split copies" in result.output
    cleaning = json.loads((out / "cleaning_report.json").read_text())
    leakage = json.loads((out / "leakage_report.json").read_text())
    excluded = {e["path"]: e["reason"] for e in cleaning["excluded"]}
    for d in planted["defects"]:
        if d["expect"].startswith("excluded:"):
            assert excluded[d["path"]] == d["expect"].split(":")[1]
    pairs = {(p["a"], p["b"]) for p in leakage["pairs"]}
    assert all((c["original"], c["copy"]) in pairs for c in planted["copies"])
    assert tree_digest(path) == before


def test_audit_layout_error_exits_2_without_traceback(tmp_path):
    (tmp_path / "data" / "train").mkdir(parents=True)
    result = CliRunner().invoke(app, ["audit", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "missing folder" in result.output and "Traceback" not in result.output
