"""report.md and model_card.md: pure string rendering of the run's dicts."""

from __future__ import annotations

import pytest

from boneflow.report import code_version, render_model_card, render_report
from boneflow.store import InvalidKeyError

SPLIT = {"n": 120, "accuracy": 0.9167, "accuracy_ci95": [0.852, 0.954], "recall_fractured": 0.93,
         "specificity": 0.9, "precision_fractured": 0.91, "f1_fractured": 0.92, "auroc": 0.97,
         "ece": 0.041, "confusion": [[54, 6], [4, 56]]}
METRICS = {"run_id": "20260101T000000Z-abc123",
           "splits": {"val": SPLIT, "test": dict(SPLIT, accuracy=0.95), "test_clean": SPLIT}}
GATE = {"passed": False, "reasons": ["leak-free test accuracy 0.874 < 0.900"],
        "policy": {"min_accuracy": 0.9, "min_recall": 0.9, "max_regression": 0.01, "split": "test_clean"},
        "champion_run_id": "20251201T000000Z-000aaa"}
DATASET = {"source": "kaggle", "handle": "bmadushanirodrigo/fracture-multi-region-x-ray-data",
           "version": "2", "file_count": 10580, "fingerprint": "f" * 64}
CLEANING = {"kept": 10500, "excluded": 80, "excluded_by_reason": {"truncated": 50, "too small": 30},
            "stray_folders": ["x"]}
LEAKAGE = {"cross_split_pairs": 37, "leakfree_test": 480, "test_removed": 26}
PLOTS = {"Confusion matrix": "confusion_matrix.png", "ROC": "roc.png"}


def _report(**over):
    kwargs = dict(run_id="20260101T000000Z-abc123", metrics=METRICS, gate=GATE, dataset=DATASET,
                  cleaning_summary=CLEANING, leakage_summary=LEAKAGE, plots=PLOTS, history=None)
    kwargs.update(over)
    return render_report(**kwargs)


def test_report_has_metrics_with_intervals_per_split():
    md = _report()
    assert "| split | n | accuracy [95% CI] |" in md
    assert "| validation | 120 | 0.917 [0.852, 0.954] |" in md
    assert "| leak-free test | 120 | 0.917 [0.852, 0.954] |" in md
    assert "| official test | 120 | 0.950 [0.852, 0.954] |" in md
    assert "| leak-free test | 54 | 6 | 4 | 56 |" in md  # confusion counts


def test_report_gate_dataset_cleaning_leakage_and_plots():
    md = _report()
    assert "**Gate: REJECTED — not promoted**" in md
    assert "- leak-free test accuracy 0.874 < 0.900" in md
    assert "20251201T000000Z-000aaa" in md
    assert "f" * 64 in md and "fracture-multi-region-x-ray-data" in md and "10580" in md
    assert "truncated: 50" in md and "| stray_folders | 1 item(s) |" in md
    assert "| cross_split_pairs | 37 |" in md
    assert "![Confusion matrix](confusion_matrix.png)" in md and "![ROC](roc.png)" in md
    assert "**Gate: PASSED" in _report(gate=dict(GATE, passed=True))


def test_report_history_table_and_no_plots():
    md = _report(history=[{"epoch": 1, "train_loss": 0.6, "val_acc": 0.7}], plots={})
    assert "| epoch | train_loss | val_acc |" in md and "| 1 | 0.600 | 0.700 |" in md
    assert "## Plots" not in md


@pytest.mark.parametrize("bad", ["/tmp/x.png", "../x.png", "https://evil/x.png"])
def test_plot_links_must_be_relative_names(bad):
    with pytest.raises(InvalidKeyError):
        _report(plots={"x": bad})


def test_table_cells_escape_pipes():
    md = _report(dataset=dict(DATASET, handle="a|b"))
    assert "a\\|b" in md


def test_model_card_sections_warning_and_limitations():
    card = render_model_card(run_id="20260101T000000Z-abc123", metrics=METRICS, dataset=DATASET,
                             config={"image_size": 224, "epochs": 12}, leakage_summary=LEAKAGE,
                             gate=GATE, code={"package_version": "0.1.0", "git_commit": "a" * 40},
                             model_meta={"classes": ["not fractured", "fractured"]})
    assert "**Not for diagnosis.**" in card
    for section in ("## Intended use", "## Data", "## How it was evaluated", "## Metrics",
                    "## Limitations", "## Code version"):
        assert section in card
    assert "37 near-duplicate pair(s) across train/val/test" in card
    assert f"git commit `{'a' * 40}`" in card
    assert "0.917 [0.852, 0.954]" in card and "| image_size | 224 |" in card


def test_model_card_never_writes_credentials():
    card = render_model_card(run_id="r", metrics={"splits": {}}, dataset={}, config={
        "store_url": "https://AKIAEXAMPLE:supersecret@minio.local/bucket",
        "aws_secret_access_key": "supersecret2", "api_token": "tok"})
    assert "supersecret" not in card and "tok |" not in card and "AKIAEXAMPLE" not in card
    assert "https://***@minio.local/bucket" in card
    assert "git commit not available" in card  # default without code info


def test_code_version_reports_package_and_commit_or_none():
    info = code_version()
    assert info["package_version"]
    assert info["git_commit"] is None or len(info["git_commit"]) == 40
