"""Radiographs as the unit of evaluation (evaluate/radiographs.py, evaluate/scores.py,
metrics by radiograph in evaluate/predict.py)."""

from __future__ import annotations

import numpy as np
import pytest

from boneflow.evaluate.calibration import OperatingPoint, fit_operating_point, recall_threshold
from boneflow.evaluate.metrics import auroc_bootstrap_interval, headline_intervals, wilson_interval
from boneflow.evaluate.predict import SplitScores, split_report
from boneflow.evaluate.radiographs import by_radiograph, group_of_each_file
from boneflow.evaluate.scores import split_groups


def test_a_radiographs_probability_is_the_mean_of_its_files_and_mixed_groups_are_left_out():
    groups = ["a", "a", "a", "b", "c", "c", "d", "d"]
    labels = [1, 1, 1, 0, 0, 1, 0, 0]
    probs = [0.9, 0.6, 0.3, 0.2, 0.5, 0.5, 0.1, 0.4]
    rad = by_radiograph(groups, labels, probs)
    assert rad.groups == ["a", "b", "d"]  # c carries both labels: not judged
    assert rad.mixed == ["c"]
    assert rad.probability.tolist() == pytest.approx([0.6, 0.2, 0.25])
    assert rad.labels.tolist() == [1, 0, 0] and rad.files.tolist() == [3, 1, 2]
    assert rad.predicted(0.25).tolist() == [1, 0, 1]  # the threshold itself calls fractured


def test_files_without_a_group_are_their_own_radiograph():
    assert group_of_each_file(["x.png", "y.png"], None) == ["file:x.png", "file:y.png"]
    assert group_of_each_file(["x.png", "y.png"], ["g1", None]) == ["g1", "file:y.png"]
    with pytest.raises(ValueError, match="2 files but 1 group ids"):
        group_of_each_file(["x.png", "y.png"], ["g1"])


def test_auroc_by_radiograph_equals_the_hand_computed_value():
    # radiographs: P1 (0.8, 3 copies), P2 (0.4), N1 (0.6, 2 copies), N2 (0.2), N3 (0.4)
    paths = [f"f{i}.png" for i in range(8)]
    groups = ["P1", "P1", "P1", "P2", "N1", "N1", "N2", "N3"]
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    probs = np.array([0.8, 0.8, 0.8, 0.4, 0.6, 0.6, 0.2, 0.4])
    margins = np.log(probs / (1 - probs))
    m = split_report(SplitScores(labels, margins, paths, groups), OperatingPoint(threshold=0.5))
    # pairs (pos, neg): P1 beats all 3; P2 beats N2, ties N3 (1/2), loses to N1 -> (3 + 1.5) / 6
    assert m["auroc"] == pytest.approx(4.5 / 6)
    assert (m["n"], m["files"]) == (5, 8)
    # at 0.5: P1 right, P2 missed, N1 wrong, N2 and N3 right -> 3 of 5 radiographs right
    assert m["accuracy"] == pytest.approx(3 / 5) and m["confusion"] == [[2, 1], [1, 1]]
    assert m["accuracy_ci95"] == pytest.approx(wilson_interval(3, 5))
    # by file, the copies count: 3 of P1 right, N1's two copies wrong
    assert m["by_file"]["n"] == 8 and m["by_file"]["accuracy"] == pytest.approx(5 / 8)
    assert m["mixed_label_groups"] == []


def test_auroc_interval_brackets_the_auroc_and_narrows_with_more_radiographs():
    rng = np.random.default_rng(3)

    def sample(n):
        y = rng.integers(0, 2, n)
        return y, rng.normal(y * 1.0, 1.0)

    y, s = sample(40)
    small = auroc_bootstrap_interval(y, s)
    y2, s2 = sample(400)
    large = auroc_bootstrap_interval(y2, s2)
    from sklearn.metrics import roc_auc_score

    assert small[0] < roc_auc_score(y, s) < small[1]
    assert large[0] < roc_auc_score(y2, s2) < large[1]
    assert large[1] - large[0] < (small[1] - small[0]) / 2
    assert auroc_bootstrap_interval([1, 1], [0.2, 0.3]) is None  # one class: no AUROC
    intervals = headline_intervals([1, 1, 0], [0.9, 0.4, 0.1], predicted=[1, 0, 0])
    assert intervals["recall_fractured_ci95"] == pytest.approx(wilson_interval(1, 2))
    assert intervals["specificity_ci95"] == pytest.approx(wilson_interval(1, 1))


@pytest.mark.parametrize("target", [0.01, 0.5, 0.9, 1.0])
def test_the_threshold_never_calls_no_radiograph_fractured(target):
    labels = np.array([1, 1, 1, 0, 0, 0])
    probs = np.array([0.99, 0.7, 0.4, 0.8, 0.3, 0.1])
    threshold = recall_threshold(labels, probs, target_recall=target)
    called = probs >= threshold
    assert called[labels == 1].sum() >= max(1, int(np.ceil(target * 3)))
    assert called.any()
    assert recall_threshold(np.zeros(3), probs[:3], target_recall=target) is None


def test_operating_point_fitted_on_radiographs_not_files():
    # validation: fractured radiograph A has 9 copies, all scored low; B and C scored high.
    groups = ["A"] * 9 + ["B", "C", "N1", "N2", "N3"]
    labels = np.array([1] * 9 + [1, 1, 0, 0, 0])
    margins = np.array([-1.0] * 9 + [3.0, 2.5, -2.0, 0.0, -3.0])
    point = fit_operating_point(labels, margins, target_recall=0.6, groups=groups)
    # by radiograph: 3 fractured, k = ceil(0.6 * 3) = 2 -> B and C called, A not
    assert point.details["n"] == 6 and point.details["files"] == 14
    assert point.details["val_recall"] == pytest.approx(2 / 3) and point.details["target_reached"]
    by_file = fit_operating_point(labels, margins, target_recall=0.6)
    # by file the nine copies of A dominate: recall 0.6 of 11 files needs A's copies called
    assert by_file.threshold < point.threshold


def test_groups_come_from_the_packs_splits_json(demo_validated, tmp_path):
    from boneflow.splits.pack import pack_dataset
    from boneflow.splits.packed import InMemorySplits

    _, _, _, validated, audit = demo_validated
    packed = pack_dataset(validated, audit, out_dir=tmp_path / "packed", split_policy="regroup", min_gate_n=0)
    found = {name: split_groups(packed, name) for name in ("train", "val", "test")}
    for name, groups in found.items():
        assert groups is not None and len(groups) == len(packed.split(name).paths), name
    every = [g for groups in found.values() for g in groups]
    assert len(set(every)) < len(every)  # the demo set plants copy families: some files share a group
    # regroup keeps whole groups in one split: no group in two splits
    assert not set(found["test"]) & (set(found["train"]) | set(found["val"]))
    assert split_groups(InMemorySplits({"test": packed.split("test")}, packed.size), "test") is None
