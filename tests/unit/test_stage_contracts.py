"""The retrain stages' core, chained through their contracts with no Prefect: train -> package
-> evaluate -> gate -> run files. What one stage hands the next is a frozen value; the files a
run publishes are built from those values and the pack alone."""

from __future__ import annotations

import json
from functools import partial

import pytest
from pydantic import ValidationError

from boneflow.config import RetrainConfig
from boneflow.contracts import Acquired, ChampionRef, Predictions, Scores, TrainSummary
from boneflow.gate.decision import GateDecision, judge
from boneflow.settings import GatePolicy

_CHAIN: dict = {}


@pytest.fixture
def chain(demo_validated, tmp_path_factory):
    """One small real run of the core stages on the shared demo pack (64 px, one epoch), once."""
    if not _CHAIN:
        _CHAIN["run"] = _run_chain(demo_validated, tmp_path_factory.mktemp("chain"))
    return _CHAIN["run"]


def _run_chain(demo_validated, base):
    from boneflow.evaluate.scores import score_candidate
    from boneflow.splits.pack import pack_dataset
    from boneflow.train.fit import fit
    from boneflow.train.package import package_model

    path, _, _, validated, audit = demo_validated
    packed = pack_dataset(validated, audit, out_dir=base / "packed", min_gate_n=0)
    config = RetrainConfig(image_size=56, epochs=1, batch_size=32, pretrained=False, min_gate_n=0, min_recall=0.5)
    result = fit(packed, config.train_settings(), checkpoint_dir=base / "ckpt")
    summary = package_model(
        result,
        base / "model",
        run_id="20261126T000000Z-abcdef",
        dataset_fingerprint=packed.fingerprint,
        config=config,
        classes=packed.classes,
        pack_size=packed.size,
    )
    scores, _ = score_candidate(
        result.model, packed, run_id=summary.run_id, image_size=config.image_size, target_recall=config.target_recall
    )
    acquired = Acquired(root=str(path), version={"source": "local", "fingerprint": packed.fingerprint})
    return base, packed, config, summary, scores, acquired


def test_training_is_packaged_with_its_summary(chain):
    from boneflow.train.package import MODEL_FILES, TRAIN_RESULT, read_train_summary

    base, packed, config, summary, _, _ = chain
    assert sorted(p.name for p in (base / "model").iterdir()) == sorted(MODEL_FILES)
    stored = read_train_summary((base / "model" / TRAIN_RESULT).read_bytes(), where="train_result.json")
    assert stored == summary and summary.epochs_run == 1 and len(summary.history) == 1
    meta = json.loads((base / "model" / "model.json").read_text())
    assert meta["config_fingerprint"] == config.fingerprint() == summary.config_fingerprint
    assert meta["classes"] == list(packed.classes) and meta["preprocessing"]["pack_size"] == packed.size


def test_a_damaged_train_result_names_its_key():
    from boneflow.errors import BoneflowError
    from boneflow.train.package import read_train_summary

    with pytest.raises(BoneflowError, match="runs/x/train_result.json is not a valid training result"):
        read_train_summary(b'{"run_id": "x"}', where="runs/x/train_result.json")


def test_scores_carry_per_image_results_of_every_split(chain):
    _, packed, _, _, scores, _ = chain
    assert set(scores.splits) == set(scores.predictions) >= {"val", "test", "test_clean"}
    for name, seen in scores.predictions.items():
        files = scores.splits[name]["files"]
        assert len(seen.paths) == len(seen.labels) == len(seen.predicted) == len(seen.probability) == files
        assert len(seen.groups) == files and seen.threshold == scores.operating_point["threshold"]
        assert seen.paths == list(packed.split(name).paths)
        # the headline n counts radiographs: the distinct groups, less any with both labels
        mixed = scores.splits[name]["mixed_label_groups"]
        assert scores.splits[name]["n"] == len(set(seen.groups)) - len(mixed)
        assert scores.splits[name]["by_file"]["n"] == files
    assert scores.operating_point is not None and scores.split_policy is not None
    test = scores.splits["test"]  # the demo pack plants copy families: fewer radiographs than files
    assert 0 < test["n"] < test["files"] and len(test["auroc_ci95"]) == 2


def test_the_gate_pairs_two_models_on_the_same_images(chain):
    _, _, _, _, scores, _ = chain
    policy = GatePolicy(min_accuracy=0.0, min_recall=0.0, max_regression=1.0, min_n=0)
    alone = judge(scores, None, policy)
    assert alone.passed and alone.paired is None and "no champion yet" in alone.message
    champion = scores.model_copy(update={"run_id": "20261101T000000Z-000000"})
    paired = judge(scores, champion, policy)
    assert paired.champion_run_id == champion.run_id
    assert paired.paired["n"] == scores.splits["test_clean"]["n"] and paired.paired["difference"] == 0


def test_run_files_come_from_the_values_and_the_pack(chain, tmp_path):
    from boneflow.report.run_files import PLOT_NAMES, write_run_files
    from boneflow.serve.predictor import Predictor

    base, packed, config, summary, scores, acquired = chain
    decision = judge(scores, None, GatePolicy(min_accuracy=0.0, min_recall=0.0, max_regression=1.0, min_n=0))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for p in (base / "model").iterdir():
        (model_dir / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    files = write_run_files(
        out,
        run_id=summary.run_id,
        config=config,
        acquired=acquired,
        packed=packed,
        model_dir=model_dir,
        trained=summary,
        candidate=scores,
        decision=decision,
        load_predictor=partial(Predictor.from_model_dir, run_id=summary.run_id),
    )
    expected = {"metrics.json", "report.md", "model_card.md", "leakage_report.json", "predictions.csv"}
    assert set(PLOT_NAMES) | expected | {"error_gallery.json"} <= set(files)
    assert all(p.is_file() and p.stat().st_size > 0 for p in files.values())
    metrics = json.loads(files["metrics.json"].read_text())
    assert metrics["splits"] == scores.splits and metrics["gate"] == decision.to_dict()
    assert metrics["dataset"]["fingerprint"] == packed.fingerprint
    # serving reads the operating point from the published model.json
    assert json.loads(files["model.json"].read_text())["threshold"] == scores.operating_point["threshold"]
    # predictions.csv: one row per evaluated file (the regrouped test once), its group and split
    import csv

    rows = list(csv.DictReader(files["predictions.csv"].read_text().splitlines()))
    assert list(rows[0]) == ["path", "group", "split", "fold", "label", "probability", "predicted", "threshold"]
    judged = scores.predictions["test_clean"]
    assert {r["path"] for r in rows if r["split"] == "test_clean"} == set(judged.paths)
    assert len(rows) == len({r["path"] for r in rows})
    alias = "test" if scores.split_policy["used"] == "regroup" else "official_test"
    assert not any(r["split"] == alias for r in rows)  # a split that repeats another is listed once
    gallery = json.loads(files["error_gallery.json"].read_text())
    assert len(gallery) <= 12 and all(r["label"] != r["predicted"] for r in gallery)
    probs = [r["probability"] if r["label"] == "not fractured" else 1 - r["probability"] for r in gallery]
    assert probs == sorted(probs, reverse=True)  # most confident first
    report = files["report.md"].read_text()
    assert report.index("## Most confident errors") < report.index("## Honest evaluation")


def test_skip_only_for_the_same_data_and_model_settings():
    champion = ChampionRef(run_id="r", etag="e", dataset_fingerprint="d", config_fingerprint="c")
    assert "equal champion r's" in champion.skip_reason(dataset_fingerprint="d", config_fingerprint="c")
    assert champion.skip_reason(dataset_fingerprint="d2", config_fingerprint="c") is None
    assert champion.skip_reason(dataset_fingerprint="d", config_fingerprint="c2") is None


def test_contracts_are_frozen_and_refuse_unknown_fields():
    summary = TrainSummary(
        run_id="r", dataset_fingerprint="d", config_fingerprint="c", best_epoch=1, epochs_run=1, seconds=1.0, history=[]
    )
    with pytest.raises(ValidationError):
        summary.epochs_run = 5  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        Predictions(paths=[], labels=[], predicted=[], probability=[], margins=[])
    with pytest.raises(ValidationError):
        GateDecision(passed=True, verdict="ok")
    assert Scores.model_validate_json(Scores(run_id="r", splits={}, predictions={}).model_dump_json()).run_id == "r"
