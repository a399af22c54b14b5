"""`boneflow gc` on a folder store seeded with what a real store collects over time: names with
spaces and odd characters, non-UTF-8 names, links, foreign files and folders, temp-like names
that are not boneflow's, and the leftovers of a gc killed half-way. It exits 0, deletes only
what the layout says is its own, reports what it skipped, and the champion still serves."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from boneflow.cli.main import app
from boneflow.demo.store import write_demo_store
from boneflow.registry.gc import collect_garbage
from boneflow.store import LocalStore
from gc_helpers import add_checkpoints, keys_of, publish, run_ids

runner = CliRunner()
OLD = time.time() - 48 * 3600


def _age(root: Path, when: float = OLD) -> None:
    for dirpath, dirs, files in os.walk(root, topdown=False):
        for name in files + dirs:
            os.utime(Path(dirpath) / name, (when, when), follow_symlinks=False)


def _gc(root: Path, *extra: str) -> dict:
    result = runner.invoke(app, ["gc", "--store", str(root), "--skip-work-dir", "--keep-runs", "1", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture()
def odd_store(tmp_path, monkeypatch):
    monkeypatch.setenv("BONEFLOW_CACHE", str(tmp_path / "cache"))
    root, tmp, outside = tmp_path / "store", tmp_path / "tmp", tmp_path / "outside"
    tmp.mkdir()
    outside.mkdir()
    (outside / "keep.bin").write_bytes(b"not the store's")
    store = LocalStore(root)
    half_new_order, old, half_old_order, emptied, kept = run_ids(5)  # oldest first: `kept` is the newest
    champion = write_demo_store(str(root), image_size=48, seed=0)  # a real model: it must still serve
    for run_id in (kept, old, half_new_order, half_old_order):
        add_checkpoints(store, run_id, tmp)
        publish(store, run_id)
    runs = root / "runs"
    # a gc killed half-way, deleting the manifest last: the run still has it, some files are gone
    (runs / half_new_order / "model.safetensors").unlink()
    (runs / half_new_order / "checkpoints" / "index.json").unlink()
    # a gc killed half-way, deleting the manifest first: the rest reads as a run never published
    (runs / half_old_order / "manifest.json").unlink()
    # a gc killed after the last file, before removing the folders
    (runs / emptied / "checkpoints").mkdir(parents=True)
    odd = {
        runs / "README (old).txt": b"notes",  # not a valid key: '(' and ')'
        runs / "notes" / "readme.txt": b"a folder that is not a run",
        runs / old / "bad[1].json": b"{}",  # in a run folder, but not a valid key
        runs / old / "notes with spaces.txt": b"a valid name inside the run: goes with it",
        runs / os.fsdecode(b"\xff\xfe.bin"): b"not UTF-8",
        runs / kept / "a" / "b" / "deep.bin": b"deeper than a run's layout",
        root / "other-tool" / ".tmp-0123abcd-x.bin": b"a foreign folder's temp-like file",
        runs / old / ".tmp-foreign": b"a hidden file not named like ours",
        runs / old / ".tmp-abcdef12-model.json": b"ours: a write killed half-way",
        root / "datasets" / "0123abcd" / "64" / ".tmp-89abcdef-train.npy": b"ours too",
    }
    for path, data in odd.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    os.symlink(outside / "keep.bin", runs / old / "out.bin")  # a link leaving the store
    _age(root)
    return dict(root=root, store=store, champion=champion, ids=(kept, old, half_new_order, half_old_order, emptied))


def test_gc_on_an_odd_store_exits_0_skips_and_reports_and_the_champion_still_serves(odd_store, tmp_path):
    root, store, champion = odd_store["root"], odd_store["store"], odd_store["champion"]
    kept, old, half_new_order, half_old_order, emptied = odd_store["ids"]
    before = set(root.rglob("*"))
    dry = _gc(root, "--dry-run")
    assert set(root.rglob("*")) == before
    report = _gc(root)
    deleted = {i["key"] for i in report["store_objects"]["deleted"]}
    assert deleted == {i["key"] for i in dry["store_objects"]["would_delete"]}
    skipped = {i["key"]: i["reason"] for i in report["store_objects"]["skipped"]}
    assert set(skipped) == {
        "runs/README (old).txt",
        "runs/notes/readme.txt",
        f"runs/{old}/bad[1].json",
        f"runs/{old}/out.bin",
        f"runs/{kept}/a/b/deep.bin",
        "runs/" + os.fsdecode(b"\xff\xfe.bin"),
    }
    assert "outside the store" in skipped[f"runs/{old}/out.bin"] and "run folder" in skipped["runs/notes/readme.txt"]
    json.dumps(report)  # the non-UTF-8 name is reported as JSON can hold it
    # what was skipped, foreign or not named like ours is all still there
    for rel in (
        "runs/README (old).txt",
        "runs/notes/readme.txt",
        f"runs/{old}/bad[1].json",
        f"runs/{kept}/a/b/deep.bin",
    ):
        assert (root / rel).exists(), rel
    assert (root / "other-tool" / ".tmp-0123abcd-x.bin").exists() and (root / "runs" / old / ".tmp-foreign").exists()
    assert (tmp_path / "outside" / "keep.bin").read_bytes() == b"not the store's"
    assert (root / "runs" / old / "out.bin").is_symlink()
    # ours went: the old run's valid files, both half-deleted runs, temp files, empty folders
    assert f"runs/{old}/notes with spaces.txt" in deleted and f"runs/{old}/manifest.json" in deleted
    assert not keys_of(store, half_new_order) and not keys_of(store, half_old_order)
    assert not (root / "runs" / half_new_order).exists() and not (root / "runs" / half_old_order).exists()
    assert {f"runs/{old}/.tmp-abcdef12-model.json", "datasets/0123abcd/64/.tmp-89abcdef-train.npy"} <= deleted
    assert {f"runs/{emptied}/checkpoints/", f"runs/{emptied}/"} <= deleted and not (root / "runs" / emptied).exists()
    assert keys_of(store, kept) and not any("/checkpoints/" in k for k in keys_of(store, kept))
    # the champion is whole and serves
    assert report["kept_runs"][champion] == "champion" and store.size("champion.json") is not None
    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(image)
    served = runner.invoke(app, ["predict", str(image), "--store", str(root), "--cache-dir", str(tmp_path / "c")])
    assert served.exit_code == 0 and json.loads(served.stdout)["run_id"] == champion
    again = _gc(root)  # the next gc finds nothing more and reports the same skipped keys
    assert (
        again["store_objects"]["deleted"] == []
        and again["store_objects"]["skipped"] == report["store_objects"]["skipped"]
    )


def test_a_gc_killed_half_way_is_finished_by_the_next_one(tmp_path):
    store = LocalStore(tmp_path / "store")
    champion, old_a, old_b = run_ids(3)
    for run_id in (champion, old_a, old_b):
        add_checkpoints(store, run_id, tmp_path)
        publish(store, run_id, promote_it=run_id == champion)
    _age(tmp_path / "store")
    real_delete, calls = store.delete, []

    def dies_on_the_fourth(key: str) -> None:
        calls.append(key)
        if len(calls) == 4:
            raise OSError("killed")
        real_delete(key)

    store.delete = dies_on_the_fourth
    with pytest.raises(OSError, match="killed"):
        collect_garbage(store, work_dir=None, keep_runs=0)
    store.delete = real_delete
    # the manifest goes last: the run still reads as finished
    assert store.size(f"runs/{old_a}/manifest.json") is not None
    report = collect_garbage(store, work_dir=None, keep_runs=0)
    assert f"runs/{old_a}/manifest.json" in {i["key"] for i in report["store_objects"]["deleted"]}
    assert not keys_of(store, old_a) and not keys_of(store, old_b) and keys_of(store, champion)
    assert not (tmp_path / "store" / "runs" / old_a).exists()


def test_temp_files_are_ours_only_in_our_folders(tmp_path):
    from boneflow.atomic import write_bytes

    store = LocalStore(tmp_path / "store")
    root = tmp_path / "store"
    store.put_bytes("champion.json", b"{}")
    run_id = run_ids(1)[0]
    store.put_bytes(f"runs/{run_id}/model.json", b"{}")
    names = {
        f"runs/{run_id}/.tmp-0badc0de-model.json": True,  # the name atomic writes make, in a run folder
        ".tmp-1badc0de-champion.json": True,  # at the root (the champion pointer's folder)
        "datasets/0123abcd/64/.tmp-2badc0de-x.npy": True,
        "elsewhere/.tmp-3badc0de-x.npy": False,  # a folder the layout does not have
        "runs/notes/.tmp-4badc0de-x": False,  # not a run folder
        f"runs/{run_id}/.tmp-backup": False,  # not a name boneflow makes
        f"runs/{run_id}/.tmp-0BADC0DE-x": False,  # upper-case hex: not ours either
    }
    for rel in names:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    listed = {t.key for t in store.temp_objects()}
    assert listed == {rel for rel, ours in names.items() if ours}
    for rel, ours in names.items():
        if not ours:
            with pytest.raises(Exception, match="not a temp file"):
                store.delete_temp(rel)
            assert (root / rel).exists()
    with write_bytes.__globals__["atomic_output"](root / "runs" / run_id / "report.md") as fh:
        written_temp = Path(fh.name).name
        assert written_temp in {Path(k).name for k in (t.key for t in store.temp_objects())}


def test_empty_run_folders_younger_than_the_grace_period_stay(tmp_path):
    root = tmp_path / "store"
    store = LocalStore(root)
    run_id = run_ids(1)[0]
    (root / "runs" / run_id / "checkpoints").mkdir(parents=True)
    now = datetime.now(UTC)
    young = collect_garbage(store, work_dir=None, grace=timedelta(hours=24), now=now)
    assert young["store_objects"]["deleted"] == [] and (root / "runs" / run_id).is_dir()
    old = collect_garbage(store, work_dir=None, grace=timedelta(hours=24), now=now + timedelta(hours=25))
    assert {i["key"] for i in old["store_objects"]["deleted"]} == {f"runs/{run_id}/checkpoints/", f"runs/{run_id}/"}
    assert not (root / "runs" / run_id).exists() and (root / "runs").is_dir()
