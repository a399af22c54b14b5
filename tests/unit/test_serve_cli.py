"""`boneflow predict`: JSON lines, clear errors, exit codes, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from boneflow.cli.main import app
from boneflow.demo.store import write_demo_store
from boneflow.serve.examples import write_examples

runner = CliRunner()


@pytest.fixture()
def store(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "store"
    write_demo_store(str(path), image_size=64, seed=0)
    return path


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_one_json_line_per_image(store, tmp_path):
    images = write_examples(tmp_path / "ex", size=96)[:2]
    jpeg = tmp_path / "c.jpg"
    Image.open(images[0]).convert("RGB").save(jpeg)
    result = runner.invoke(app, ["predict", *map(str, images), str(jpeg), "--store", str(store)])
    assert result.exit_code == 0, result.output
    lines = _lines(result.stdout)
    run_id = json.loads((store / "champion.json").read_text())["run_id"]
    assert [line["path"] for line in lines] == [str(images[0]), str(images[1]), str(jpeg)]
    for line in lines:
        assert set(line) == {"path", "label", "prob_fractured", "run_id"}
        assert line["run_id"] == run_id and line["label"] in ("fractured", "not fractured")


def test_bad_files_get_an_error_line_and_a_nonzero_exit(store, tmp_path):
    good = write_examples(tmp_path / "ex", size=96)[0]
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "cut.jpg"
    Image.open(good).convert("RGB").save(truncated, quality=90)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])
    missing = tmp_path / "missing.png"
    result = runner.invoke(
        app, ["predict", str(text), str(good), str(empty), str(truncated), str(missing), "--store", str(store)]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = {Path(line["path"]).name: line for line in _lines(result.stdout)}
    assert "label" in lines[good.name] and "error" not in lines[good.name]
    assert "not_an_image" in lines["notes.png"]["error"]
    assert "empty" in lines["empty.jpg"]["error"]
    assert "truncated" in lines["cut.jpg"]["error"] or "undecodable" in lines["cut.jpg"]["error"]
    assert "no such file" in lines["missing.png"]["error"]
    assert "4 of 5 images could not be read" in result.stderr


def test_no_champion_is_a_clear_message(tmp_path):
    (tmp_path / "empty").mkdir()
    image = write_examples(tmp_path / "ex", size=96)[0]
    result = runner.invoke(app, ["predict", str(image), "--store", str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert "no champion in" in result.stderr and "run `boneflow run` first" in result.stderr
    assert "Traceback" not in result.output


def test_run_id_option(store, tmp_path):
    first = json.loads((store / "champion.json").read_text())["run_id"]
    write_demo_store(str(store), image_size=64, seed=1)
    image = write_examples(tmp_path / "ex", size=96)[0]
    result = runner.invoke(app, ["predict", str(image), "--store", str(store), "--run-id", first])
    assert result.exit_code == 0, result.output
    assert _lines(result.stdout)[0]["run_id"] == first
    bad = runner.invoke(app, ["predict", str(image), "--store", str(store), "--run-id", "../etc"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output and "run id" in bad.stderr
