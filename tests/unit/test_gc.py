"""`boneflow gc` on a folder store and a work dir: dry run lists and deletes nothing; a real run
deletes exactly the old checkpoints, old runs, manifest-less runs and stale temp files; the
champion and everything younger than the grace period stay."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from boneflow.cli.main import app
from boneflow.store import LocalStore
from gc_helpers import add_checkpoints, keys_of, publish, run_ids

runner = CliRunner()
OLD = time.time() - 48 * 3600  # the default grace period is 24 h


def _age(root: Path, when: float) -> None:
    for dirpath, dirs, files in os.walk(root, topdown=False):
        for name in files + dirs:
            os.utime(Path(dirpath) / name, (when, when), follow_symlinks=False)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture()
def history(tmp_path):
    """{store, work, ids, expected_store, expected_work, outside}."""
    root, work, tmp = tmp_path / "store", tmp_path / "work", tmp_path / "tmp"
    tmp.mkdir()
    store = LocalStore(root)
    champion, old_a, old_b, abandoned, young_f, young_e, linked = run_ids(7)
    for run_id in (champion, old_a, old_b, abandoned, young_e):
        add_checkpoints(store, run_id, tmp)
    publish(store, champion, promote_it=True)
    for run_id in (old_a, old_b, young_f):
        publish(store, run_id)
    store.put_bytes("runs/notes/readme.txt", b"not a run: never touched")
    store.put_bytes("datasets/00000000/64/index.json", b"{}")
    (root / "runs" / old_b / ".tmp-abc12345-model.json").write_bytes(b"half")
    (root / "runs" / young_e / ".tmp-def45678-report.md").write_bytes(b"half")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.bin").write_bytes(b"x")
    for run_id in (champion, old_a, old_b, abandoned, young_f):
        (work / "runs" / run_id / "model").mkdir(parents=True)
        (work / "runs" / run_id / "model" / "w.bin").write_bytes(b"w" * 1000)
    (work / "runs" / "scratch").mkdir()
    os.symlink(outside, work / "runs" / linked)
    _age(root, OLD)
    _age(work, OLD)
    _age(root / "runs" / young_e, time.time())
    _age(root / "runs" / young_f, time.time())
    _age(work / "runs" / young_f, time.time())
    expected_store = (
        keys_of(store, old_a)
        | keys_of(store, abandoned)
        | {k for k in keys_of(store, old_b) if "/checkpoints/" in k}
        | {f"runs/{old_b}/.tmp-abc12345-model.json"}
    )
    # finished runs' folders, and the abandoned run's (no manifest, older than the grace period)
    expected_work = {str(work / "runs" / r) for r in (champion, old_a, old_b, abandoned)}
    return dict(
        store=store,
        root=root,
        work=work,
        expected_store=expected_store,
        outside=outside,
        expected_work=expected_work,
        champion=champion,
        old_b=old_b,
        young=(young_e, young_f),
    )


def _gc(history, *extra) -> dict:
    result = runner.invoke(
        app, ["gc", "--store", str(history["root"]), "--work-dir", str(history["work"]), "--keep-runs", "2", *extra]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_dry_run_lists_everything_and_deletes_nothing(history):
    before = _tree(history["root"]) | _tree(history["work"])
    report = _gc(history, "--dry-run")
    assert report["dry_run"] is True and report["champion_run_id"] == history["champion"]
    assert {i["key"] for i in report["store_objects"]["would_delete"]} == history["expected_store"]
    assert {i["path"] for i in report["work_dir"]["would_delete"]} == history["expected_work"]
    assert report["work_dir"]["bytes"] >= 3000 and report["store_objects"]["bytes"] > 0
    assert _tree(history["root"]) | _tree(history["work"]) == before


def test_real_run_deletes_exactly_the_planned_objects(history):
    store, root = history["store"], history["root"]
    before = set(store.list())
    report = _gc(history)
    deleted = {i["key"] for i in report["store_objects"]["deleted"]}
    assert deleted == history["expected_store"]
    assert set(store.list()) == before - deleted  # nothing else went
    assert keys_of(store, history["champion"]) and store.size("champion.json") is not None
    assert report["kept_runs"][history["champion"]] == "champion"
    for young in history["young"]:
        assert "younger" in report["kept_runs"][young]
    assert (root / "runs" / history["young"][0] / ".tmp-def45678-report.md").exists()
    # emptied run folders are gone too
    assert {r.name for r in (root / "runs").iterdir()} == {
        history["champion"],
        *history["young"],
        history["old_b"],
        "notes",
    }
    work_left = {p.name for p in (history["work"] / "runs").iterdir()}
    assert not {Path(p).name for p in history["expected_work"]} & work_left
    assert (history["outside"] / "keep.bin").exists() and "scratch" in work_left
    assert _gc(history)["store_objects"]["deleted"] == []  # a second run finds nothing


def test_grace_period_protects_everything_young(history):
    _age(history["root"], time.time())
    _age(history["work"], time.time())
    report = _gc(history)
    assert report["store_objects"]["deleted"] == [] and report["work_dir"]["deleted"] == []


def test_an_unreadable_champion_stops_gc(history):
    (history["root"] / "champion.json").write_text('{"run_id": "../../etc"}')
    result = runner.invoke(app, ["gc", "--store", str(history["root"]), "--skip-work-dir"])
    assert result.exit_code == 2 and "champion" in result.stderr and "Traceback" not in result.output
    assert len(history["store"].list()) > 10


def test_a_missing_store_folder_is_an_error_not_an_empty_report(tmp_path):
    result = runner.invoke(app, ["gc", "--store", str(tmp_path / "typo"), "--skip-work-dir", "--dry-run"])
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_the_library_refuses_bounds_the_command_line_already_enforces(history):
    """collect_garbage deletes: it checks its own bounds for callers other than `boneflow gc`."""
    from datetime import UTC, datetime, timedelta

    from boneflow.errors import BoneflowError
    from boneflow.registry.gc import collect_garbage
    from boneflow.registry.retention import plan_store_gc
    from boneflow.store.errors import StoreError

    store = history["store"]
    before = set(store.list())
    with pytest.raises(BoneflowError, match="negative"):
        collect_garbage(store, work_dir=None, keep_runs=2, grace=timedelta(seconds=-1))
    with pytest.raises(StoreError, match="keep_runs=-1"):
        plan_store_gc(store, keep_runs=-1, grace=timedelta(0), now=datetime.now(UTC))
    plan = plan_store_gc(store, keep_runs=0, grace=timedelta(0), now=datetime.now(UTC))  # 0 is allowed
    assert plan.kept_runs[history["champion"]] == "champion"
    assert set(store.list()) == before
