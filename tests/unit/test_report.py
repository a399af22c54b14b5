"""report.md and model_card.md: pure string rendering of the run's dicts."""

from __future__ import annotations

import pytest

from boneflow import code_version
from boneflow.report.render import render_model_card, render_report
from boneflow.store import InvalidKeyError

SPLIT = {
    "n": 120,
    "accuracy": 0.9167,
    "accuracy_ci95": [0.852, 0.954],
    "recall_fractured": 0.93,
    "specificity": 0.9,
    "precision_fractured": 0.91,
    "f1_fractured": 0.92,
    "auroc": 0.97,
    "ece": 0.041,
    "confusion": [[54, 6], [4, 56]],
}
METRICS = {
    "run_id": "20260101T000000Z-abc123",
    "splits": {"val": SPLIT, "test": dict(SPLIT, accuracy=0.95), "test_clean": SPLIT},
}
GATE = {
    "passed": False,
    "reasons": ["leak-free test accuracy 0.874 < 0.900"],
    "policy": {"min_accuracy": 0.9, "min_recall": 0.9, "max_regression": 0.01, "split": "test_clean"},
    "champion_run_id": "20251201T000000Z-000aaa",
}
DATASET = {
    "source": "kaggle",
    "handle": "bmadushanirodrigo/fracture-multi-region-x-ray-data",
    "version": "2",
    "file_count": 10580,
    "fingerprint": "f" * 64,
}
CLEANING = {
    "kept": 10500,
    "excluded": 80,
    "excluded_by_reason": {"truncated": 50, "too small": 30},
    "stray_folders": ["x"],
}
LEAKAGE = {"cross_split_pairs": 37, "leakfree_test": 480, "test_removed": 26}
PLOTS = {"Confusion matrix": "confusion_matrix.png", "ROC": "roc.png"}


def _report(**over):
    kwargs = dict(
        run_id="20260101T000000Z-abc123",
        metrics=METRICS,
        gate=GATE,
        dataset=DATASET,
        cleaning_summary=CLEANING,
        leakage_summary=LEAKAGE,
        plots=PLOTS,
        history=None,
    )
    kwargs.update(over)
    return render_report(**kwargs)


def test_report_has_metrics_by_radiograph_with_intervals_per_split():
    md = _report()
    header = "| split | radiographs | files | accuracy [95% CI] | recall (fractured) [95% CI] | AUROC [95% CI] |"
    assert header in md
    assert "| validation | 120 | – | 0.917 [0.852, 0.954] |" in md
    assert "| leak-free test | 120 | – | 0.917 [0.852, 0.954] |" in md
    assert "| official test | 120 | – | 0.950 [0.852, 0.954] |" in md
    assert "| leak-free test | 54 | 6 | 4 | 56 |" in md  # confusion counts


def test_report_shows_files_beside_radiographs_and_the_per_file_figures_second():
    from boneflow.report.summary import accuracy_line

    clean = {
        **SPLIT,
        "n": 26,
        "files": 120,
        "recall_fractured_ci95": [0.8, 0.99],
        "auroc_ci95": [0.9, 1.0],
        "by_file": {"n": 120, "accuracy": 0.95, "accuracy_ci95": [0.9, 0.97], "recall_fractured": 0.96},
        "mixed_label_groups": ["abc123"],
    }
    grouped = {**METRICS, "splits": {**METRICS["splits"], "test_clean": clean}}
    md = _report(metrics=grouped)
    assert "| leak-free test | 26 | 120 | 0.917 [0.852, 0.954] | 0.930 [0.800, 0.990] | 0.970 [0.900, 1.000] |" in md
    assert "### By file (secondary)" in md and "| leak-free test | 120 | 0.950 [0.900, 0.970] | 0.960 |" in md
    assert md.index("## Metrics by radiograph") < md.index("### By file (secondary)")
    assert "their files carry both labels: 1 radiograph(s) `abc123`" in md
    line = accuracy_line(grouped["splits"], None)
    assert "0.917 [0.852, 0.954] (n=26 radiographs in 120 files)" in line


def test_error_gallery_comes_first_with_its_table():
    rows = [
        {
            "group": "g1",
            "label": "fractured",
            "probability": 0.03,
            "predicted": "not fractured",
            "files": 3,
            "path": "test/a.jpg",
        }
    ]
    md = _report(gallery={"image": "error_gallery.png", "rows": rows, "split_name": "regrouped test"})
    assert md.index("## Most confident errors") < md.index("## Honest evaluation")
    assert "![Most confident errors](error_gallery.png)" in md
    assert "| 1 | g1 | fractured | 0.030 | not fractured | 3 | test/a.jpg |" in md
    none = _report(gallery={"image": "error_gallery.png", "rows": [], "split_name": "regrouped test"})
    assert "_No radiograph of the regrouped test is wrong._" in none
    with pytest.raises(InvalidKeyError):
        _report(gallery={"image": "../x.png", "rows": rows})


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
    card = render_model_card(
        run_id="20260101T000000Z-abc123",
        metrics=METRICS,
        dataset=DATASET,
        config={"image_size": 224, "epochs": 12},
        leakage_summary=LEAKAGE,
        gate=GATE,
        code={"package_version": "0.1.0", "git_commit": "a" * 40},
        model_meta={"classes": ["not fractured", "fractured"]},
    )
    assert "**Not for diagnosis.**" in card
    for section in (
        "## Intended use",
        "## Data",
        "## How it was evaluated",
        "## Metrics",
        "## Limitations",
        "## Code version",
    ):
        assert section in card
    assert "37 near-duplicate pair(s) across train/val/test" in card
    assert f"git commit `{'a' * 40}`" in card
    assert "0.917 [0.852, 0.954]" in card and "| image_size | 224 |" in card


def test_model_card_never_writes_credentials():
    card = render_model_card(
        run_id="r",
        metrics={"splits": {}},
        dataset={},
        config={
            "store_url": "https://AKIAEXAMPLE:supersecret@minio.local/bucket",
            "aws_secret_access_key": "supersecret2",
            "api_token": "tok",
        },
        model_meta={},
        leakage_summary={},
        gate={},
        code={"package_version": "0.1.0", "git_commit": None},
    )
    assert "supersecret" not in card and "tok |" not in card and "AKIAEXAMPLE" not in card
    assert "https://***@minio.local/bucket" in card
    assert "git commit not available" in card  # code_version() outside a git checkout


def test_code_version_reports_package_and_commit_or_none():
    info = code_version()
    assert info["package_version"]
    assert info["git_commit"] is None or len(info["git_commit"]) == 40


# --- the first screen: split policy, contamination, official vs honest, operating point ------

CONTAMINATION = {
    "official_test": 500,
    "copies_in_train_val": {"exact": 300, "near": 100, "rotated": 93, "any": 493},
    "leakfree": 7,
}
SPLIT_POLICY = {
    "requested": "auto",
    "used": "regroup",
    "reason": "the leak-free official test keeps 7 of 500 images, fewer than min_gate_n=200",
}
OPERATING_POINT = {
    "threshold": 0.312,
    "temperature": 1.83,
    "calibration": {
        "min_recall": 0.9,
        "val_recall": 0.91,
        "val_specificity": 0.62,
        "ece_before": 0.17,
        "ece_after": 0.041,
        "nll_before": 0.61,
        "nll_after": 0.48,
    },
}
HONEST = dict(
    SPLIT,
    accuracy=0.746,
    accuracy_ci95=[0.71, 0.78],
    n=150,
    threshold=0.312,
    **{"at_0.5": {"accuracy": 0.70, "accuracy_ci95": [0.62, 0.77], "recall_fractured": 0.52, "specificity": 0.88}},
)
REGROUPED = {
    "run_id": "20260101T000000Z-abc123",
    "split_policy": SPLIT_POLICY,
    "contamination": CONTAMINATION,
    "operating_point": OPERATING_POINT,
    "dataset": {"fingerprint": "f" * 64},
    "splits": {
        "val": SPLIT,
        "test": HONEST,
        "test_clean": HONEST,
        "official_test": dict(SPLIT, accuracy=0.926, accuracy_ci95=[0.90, 0.945], n=500),
    },
}
PAIRED = {
    "n": 150,
    "both_right": 100,
    "candidate_only": 12,
    "champion_only": 4,
    "both_wrong": 34,
    "difference": 8 / 150,
    "difference_ci95": [0.01, 0.1],
    "mcnemar_p": 0.0768,
    "interval_method": "Newcombe hybrid score (paired, method 10)",
}


def _first_screen(md: str) -> str:
    return md.split("## Metrics")[0]


def test_first_screen_has_policy_contamination_official_vs_honest_and_operating_point():
    gate = dict(GATE, split="test_clean", n=150, refused=True, paired=PAIRED)
    first = _first_screen(_report(metrics=REGROUPED, gate=gate))
    assert "**Gate: REFUSED — too few radiographs to judge" in first
    assert "`regroup` (requested `auto`) — the leak-free official test keeps 7 of 500" in first
    assert (
        "493 of 500 official test images (98.6 %) are copies of train/val images (strongest link: "
        "exact 300, near 100, rotated 93); 7 are leak-free"
    ) in first
    assert (
        "official test 0.926 [0.900, 0.945] (n=500 radiographs) · "
        "regrouped test 0.746 [0.710, 0.780] (n=150 radiographs)" in first
    )
    assert "99 % of its images are copies" in first
    assert "threshold 0.312" in first and "ECE 0.170 → 0.041" in first and "0.520, 0.880 at 0.5" in first
    assert "McNemar exact p = 0.0768" in first and "wrong 12, the reverse 4" in first


def test_report_tables_name_regrouped_splits_and_show_metrics_at_half():
    md = _report(metrics=REGROUPED)
    assert "| regrouped test | 150 | – | 0.746 [0.710, 0.780] |" in md
    assert md.count("| regrouped test |") == 3  # metrics, at 0.5, confusion: the judged split once each
    assert "| official test | 500 |" in md
    assert "### At threshold 0.5" in md and "| regrouped test | 150 | 0.700 [0.620, 0.770] | 0.520 | 0.880 |" in md


def test_first_screen_of_an_older_pack_says_what_was_not_measured():
    first = _first_screen(_report())
    assert "**Split policy:** not recorded" in first
    assert "**Official test contamination:** not measured for this pack." in first
    assert "official test 0.950 [0.852, 0.954] (n=120 radiographs) · leak-free test 0.917" in first
    assert "threshold 0.5, temperature 1 (not calibrated in this run)" in first


def test_quality_note_has_this_run_the_champion_and_the_decision():
    from boneflow.report.summary import render_quality

    champion = {
        "n": 150,
        "accuracy": 0.70,
        "accuracy_ci95": [0.62, 0.77],
        "recall_fractured": 0.88,
        "specificity": 0.5,
        "auroc": 0.81,
        "threshold": 0.5,
    }
    gate = {
        "passed": True,
        "reasons": [],
        "split": "test_clean",
        "n": 150,
        "refused": False,
        "champion_run_id": "20251201T000000Z-000aaa",
        "champion": champion,
        "paired": PAIRED,
    }
    note = render_quality(dict(REGROUPED, gate=gate))
    assert "# boneflow quality — run `20260101T000000Z-abc123`" in note
    assert "**Decision: PASSED — promoted to champion**" in note
    assert "| regrouped test | this run | champion `20251201T000000Z-000aaa` |" in note
    assert (
        "| accuracy [95% CI] | 0.746 [0.710, 0.780] (n=150 radiographs) | 0.700 [0.620, 0.770] (n=150 radiographs) |"
        in note
    )
    assert "| AUROC | 0.970 | 0.810 |" in note and "| threshold | 0.312 | 0.500 |" in note
    assert "Official test (contaminated): 0.926" in note and "McNemar" in note
    first = render_quality({"run_id": "r", "splits": {"test_clean": SPLIT}, "gate": {"passed": False}})
    assert "REJECTED" in first and "champion (none)" in first and "| fractured recall | 0.930 | – |" in first


def test_model_card_states_split_policy_contamination_and_operating_point():
    card = render_model_card(
        run_id="r",
        metrics=REGROUPED,
        dataset={},
        config={},
        model_meta={"threshold": 0.312, "temperature": 1.83},
        leakage_summary={},
        gate={},
        code={"package_version": "0.1.0", "git_commit": None},
    )
    assert "`regroup` (requested `auto`)" in card and "493 of 500 official test images" in card
    assert "threshold 0.312, temperature 1.830" in card
