"""The retrain flow in-process (dispatch=local) on the real core: promote, then skip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flow_helpers import artifacts_of, task_names_of

from flows.retrain import retrain

pytestmark = pytest.mark.flows


def test_first_run_promotes_then_same_data_and_config_is_skipped(tiny_config):
    config = tiny_config()
    state = retrain(config, return_state=True)
    assert state.is_completed() and state.name == "Completed", state.message
    summary = state.result()
    store = Path(config.store_url)
    champion = json.loads((store / "champion.json").read_text())
    assert champion["run_id"] == summary["run_id"]
    assert champion["config_fingerprint"] == config.fingerprint()
    manifest = json.loads((store / "runs" / summary["run_id"] / "manifest.json").read_text())
    for name in (
        "model.safetensors",
        "metrics.json",
        "report.md",
        "model_card.md",
        "roc.png",
        "train_result.json",
        "cleaning_report.json",
        "leakage_report.json",
    ):
        assert name in manifest["files"], name
    assert (store / "datasets" / champion["dataset_fingerprint"] / str(config.pack_size) / "index.json").is_file()
    run_dir = store / "runs" / summary["run_id"]
    model_meta = json.loads((run_dir / "model.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # the operating point chosen on validation is served from model.json and reported per split
    assert 0 <= model_meta["threshold"] <= 1 and model_meta["temperature"] > 0
    assert metrics["splits"]["test_clean"]["threshold"] == model_meta["threshold"]
    assert {"accuracy", "recall_fractured", "specificity"} <= set(metrics["splits"]["val"]["at_0.5"])
    assert "## Honest evaluation" in (run_dir / "report.md").read_text()

    keys = artifacts_of(state.state_details.flow_run_id)
    rid = summary["run_id"].lower()
    assert f"report-{rid}" in keys and "data:image/png;base64," in keys[f"report-{rid}"].data
    assert {f"exclusions-{rid}", f"leakage-pairs-{rid}", f"per-class-metrics-{rid}"} <= set(keys)

    again = retrain(config, return_state=True)
    assert again.is_completed() and again.name == "Skipped"
    assert summary["run_id"] in again.message
    ran = task_names_of(again.state_details.flow_run_id)
    # the packed dataset came back from the store: no second decode of the images
    assert "fetch_packed_dataset" in ran and not {"validate", "audit", "pack_and_store"} & ran
    assert json.loads((store / "champion.json").read_text()) == champion


def test_a_champion_trained_at_another_size_is_rescored_and_compared(tiny_config):
    first = tiny_config()  # 32 px crops from 37 px packs
    assert retrain(first, return_state=True).is_completed()
    champion_id = json.loads((Path(first.store_url) / "champion.json").read_text())["run_id"]
    champion_test = json.loads((Path(first.store_url) / "runs" / champion_id / "metrics.json").read_text())

    second = tiny_config(image_size=40, max_regression=1.0)  # 46 px packs: other arrays
    state = retrain(second, return_state=True)
    assert state.is_completed(), state.message
    metrics = json.loads((Path(second.store_url) / "runs" / state.result()["run_id"] / "metrics.json").read_text())
    assert metrics["gate"]["champion_run_id"] == champion_id
    # the champion's re-score on the same images equals its own evaluation (same model, same
    # preprocessing, same images). With these tiny models accuracy alone could also match by
    # chance; tests/unit/test_data_pack.py checks the probabilities themselves.
    rescored = [line for line in metrics["gate"]["reasons"] if "champion" in line]
    assert rescored, metrics["gate"]["reasons"]
    assert f"{champion_test['splits']['test_clean']['accuracy']:.3f}" in " ".join(rescored)
    # paired on the same images: the counts add up to the judged split and carry McNemar's p
    paired = metrics["gate"]["paired"]
    assert paired["n"] == metrics["splits"]["test_clean"]["n"]
    assert (
        paired["both_right"] + paired["candidate_only"] + paired["champion_only"] + paired["both_wrong"] == paired["n"]
    )
    assert 0 < paired["mcnemar_p"] <= 1 and "McNemar exact p" in " ".join(rescored)
    assert metrics["gate"]["champion"]["accuracy"] == champion_test["splits"]["test_clean"]["accuracy"]


def test_a_crossfitted_run_trains_one_member_per_fold_and_publishes_their_ensemble(tiny_config):
    """dispatch=local, split_policy regroup, folds 2: two training subflows (one per member run
    id), every radiograph judged out of fold, the fold ensemble published and servable."""
    import csv

    from boneflow.serve.predictor import Predictor
    from boneflow.store.keys import member_run_id

    config = tiny_config(split_policy="regroup", folds=2)
    state = retrain(config, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    run_id, store = summary["run_id"], Path(config.store_url)
    assert summary["judged_split"] == "out-of-fold set"
    run_dir = store / "runs" / run_id
    meta = json.loads((run_dir / "model.json").read_text())
    members = meta["members"]
    assert [m["weights"] for m in members] == ["model.safetensors", "member-1.safetensors"]
    assert [m["trained_in"] for m in members] == [member_run_id(run_id, 0), member_run_id(run_id, 1)]
    for m in members:  # each member trained in its own run folder, resumable there
        assert (store / "runs" / m["trained_in"] / "train_result.json").is_file()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {"member-1.safetensors", "predictions.csv", "error_gallery.png"} <= set(manifest["files"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["gate"]["split"] == "oof" and metrics["splits"]["oof"]["crossfit"]["folds"] == 2
    rows = list(csv.DictReader((run_dir / "predictions.csv").read_text().splitlines()))
    oof = [r for r in rows if r["split"] == "oof"]
    assert {r["fold"] for r in oof} == {"0", "1"}
    fold_of_group: dict[str, set] = {}
    for r in oof:
        fold_of_group.setdefault(r["group"], set()).add(r["fold"])
    assert all(len(f) == 1 for f in fold_of_group.values())  # no radiograph in two folds
    assert metrics["splits"]["oof"]["n"] == len(fold_of_group) - len(metrics["splits"]["oof"]["mixed_label_groups"])
    predictor = Predictor.from_store(config.store_url)
    image = next((Path(config.data_dir)).rglob("*.jpg"))
    assert 0.0 <= predictor.predict(image)["prob_fractured"] <= 1.0
    assert type(predictor.model).__name__ == "FoldEnsemble"

    # a second cross-fitted run is paired with the first radiograph by radiograph (its OOF table)
    second = retrain(config.model_copy(update={"force": True}), return_state=True)
    decision = json.loads((store / "runs" / second.result()["run_id"] / "metrics.json").read_text())["gate"]
    assert decision["paired"]["n"] == metrics["splits"]["oof"]["n"]
    assert "both runs predicted" in " ".join(decision["reasons"])
