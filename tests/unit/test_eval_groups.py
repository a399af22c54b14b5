"""Accuracy intervals over duplicate groups (evaluate/groups.py)."""

from __future__ import annotations

import numpy as np
import pytest

from boneflow.evaluate.groups import group_bootstrap_interval, split_groups, with_group_interval
from boneflow.evaluate.metrics import wilson_interval


def test_copies_of_one_radiograph_widen_the_interval():
    # 26 radiographs, 5 files each, every copy judged like its radiograph: 20 right, 6 wrong
    groups = [f"g{g}" for g in range(26) for _ in range(5)]
    correct = np.array([g < 20 for g in range(26) for _ in range(5)])
    per_file = wilson_interval(int(correct.sum()), len(correct))
    by_group = group_bootstrap_interval(correct, groups)
    accuracy = correct.mean()
    assert by_group[0] < accuracy < by_group[1]
    assert by_group[1] - by_group[0] > 1.5 * (per_file[1] - per_file[0]), (by_group, per_file)
    # the same results with one file per radiograph: about the per-file interval of 26 images
    single = group_bootstrap_interval(correct[::5], groups[::5])
    assert single == pytest.approx(by_group, abs=0.03)


def test_independent_files_give_about_the_binomial_interval():
    rng = np.random.default_rng(1)
    correct = rng.random(400) < 0.8
    by_group = group_bootstrap_interval(correct, [str(i) for i in range(400)])
    assert by_group == pytest.approx(wilson_interval(int(correct.sum()), 400), abs=0.015)


def test_interval_is_reproducible_and_checks_its_inputs():
    correct, groups = [True, False, True, True], ["a", "a", "b", "c"]
    assert group_bootstrap_interval(correct, groups) == group_bootstrap_interval(correct, groups)
    assert group_bootstrap_interval([], []) == [0.0, 1.0]
    with pytest.raises(ValueError, match="3 results but 2 group ids"):
        group_bootstrap_interval([True, True, False], ["a", "b"])
    assert with_group_interval({"n": 4}, np.array(correct), None) == {"n": 4}
    assert with_group_interval({"n": 4}, np.array(correct), groups)["groups"] == 3


def test_groups_come_from_the_packs_splits_json(demo_validated, tmp_path):
    from boneflow.data.pack import pack_dataset
    from boneflow.data.packed_splits import InMemorySplits

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
