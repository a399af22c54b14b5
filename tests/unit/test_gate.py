"""The gate is a pure function: table-driven cases, reasons with numbers."""

from __future__ import annotations

import pytest

from boneflow.errors import GateError
from boneflow.gate.decision import GateDecision, decide
from boneflow.settings import GatePolicy


def splits(acc, rec, split="test_clean"):
    return {split: {"accuracy": acc, "recall_fractured": rec, "n": 200}}


POLICY = GatePolicy()

CASES = [
    # (name, candidate, champion, passed, reason fragments)
    (
        "first model meets floors",
        splits(0.93, 0.95),
        None,
        True,
        ["leak-free test accuracy 0.930 >= 0.900", "no champion yet"],
    ),
    ("first model below accuracy", splits(0.874, 0.95), None, False, ["leak-free test accuracy 0.874 < 0.900"]),
    ("first model below recall", splits(0.95, 0.85), None, False, ["leak-free test fractured recall 0.850 < 0.900"]),
    ("exactly at floors passes", splits(0.90, 0.90), None, True, [">= 0.900"]),
    ("just under floor shows 4 decimals", splits(0.8996, 0.95), None, False, ["accuracy 0.8996 < 0.9000"]),
    (
        "better than champion",
        splits(0.95, 0.95),
        splits(0.93, 0.94),
        True,
        ["change +0.020 within the allowed regression 0.010"],
    ),
    ("small drop within tolerance", splits(0.925, 0.95), splits(0.93, 0.94), True, ["-0.005"]),
    ("drop of exactly max_regression passes", splits(0.92, 0.95), splits(0.93, 0.94), True, ["-0.010"]),
    (
        "regression fails",
        splits(0.91, 0.95),
        splits(0.93, 0.94),
        False,
        ["regresses 0.020 from champion 20260101T000000Z-aaaaaa's 0.930 (allowed 0.010)"],
    ),
    (
        "both floors and regression fail",
        splits(0.80, 0.70),
        splits(0.95, 0.95),
        False,
        ["accuracy 0.800 < 0.900", "recall 0.700 < 0.900", "regresses 0.150"],
    ),
]


@pytest.mark.parametrize("name,cand,champ,passed,fragments", CASES, ids=[c[0] for c in CASES])
def test_decide_table(name, cand, champ, passed, fragments):
    decision = decide(cand, champ, POLICY, champion_run_id="20260101T000000Z-aaaaaa" if champ else None)
    assert decision.passed is passed
    text = " | ".join(decision.reasons)
    for fragment in fragments:
        assert fragment in text, text


def test_decision_to_dict_is_the_metrics_json_gate_block():
    d = decide(splits(0.95, 0.95), splits(0.93, 0.9), POLICY, champion_run_id="r1").to_dict()
    assert {"passed", "reasons", "policy", "champion_run_id"} <= set(d)
    assert d["policy"] == {
        "min_accuracy": 0.9,
        "min_recall": 0.9,
        "max_regression": 0.01,
        "split": "test_clean",
        "min_n": 200,
    }
    assert (d["split"], d["n"], d["refused"], d["paired"]) == ("test_clean", 200, False, None)
    assert d["champion"]["accuracy"] == 0.93
    assert d["champion_run_id"] == "r1" and d["passed"] is True


def test_gate_reads_only_its_split():
    cand = {"test": {"accuracy": 0.99, "recall_fractured": 0.99}, **splits(0.80, 0.80)}
    assert decide(cand, None, POLICY).passed is False
    assert decide(cand, None, GatePolicy(split="test")).passed is True
    assert "official test accuracy 0.990" in decide(cand, None, GatePolicy(split="test")).reasons[0]


def test_custom_thresholds_and_message():
    loose = GatePolicy(min_accuracy=0.5, min_recall=0.5, max_regression=0.2)
    decision = decide(splits(0.6, 0.6), splits(0.75, 0.9), loose)
    assert decision.passed and decision.message.startswith("Gate passed: ")
    assert isinstance(decision, GateDecision)


def test_missing_split_or_metric_is_a_clear_error():
    with pytest.raises(GateError, match="split 'test_clean'.*evaluate on 'test_clean'"):
        decide({"val": {"accuracy": 1, "recall_fractured": 1}}, None, POLICY)
    with pytest.raises(GateError, match="recall_fractured"):
        decide({"test_clean": {"accuracy": 1}}, None, POLICY)
    with pytest.raises(GateError, match="champion metrics"):
        decide(splits(0.95, 0.95), {"val": {}}, POLICY)
    with pytest.raises(GateError, match="min_accuracy"):
        GatePolicy(min_accuracy=1.5)


def test_policy_from_config():
    from boneflow.config import RetrainConfig

    policy = RetrainConfig(min_accuracy=0.8, min_recall=0.85, max_regression=0.02, min_gate_n=50).gate_policy()
    assert (policy.min_accuracy, policy.min_recall, policy.max_regression, policy.split, policy.min_n) == (
        0.8,
        0.85,
        0.02,
        "test_clean",
        50,
    )
    assert RetrainConfig().gate_policy().min_n == GatePolicy().min_n == 200


# --- too few images: refuse, and say what to change ------------------------------------------

CONTAMINATION = {
    "official_test": 500,
    "copies_in_train_val": {"exact": 300, "near": 100, "rotated": 93, "any": 493},
    "leakfree": 7,
}


def test_refuses_below_min_n_even_when_every_number_is_perfect():
    small = {"test_clean": {"accuracy": 1.0, "recall_fractured": 1.0, "n": 7}}
    decision = decide(
        small, None, POLICY, split_policy={"used": "official", "reason": "r"}, contamination=CONTAMINATION
    )
    assert decision.passed is False and decision.refused is True and decision.n == 7
    assert decision.reasons[0] == (
        "the leak-free test holds 7 radiographs, fewer than 200: too few to judge; "
        "the official test is 99 % copies of train/val (493 of 500) — use "
        "split_policy=regroup"
    )
    assert decision.message.startswith("Gate rejected: the leak-free test holds 7 radiographs")
    # the floors are still reported, for information
    assert "leak-free test accuracy 1.000 >= 0.900" in decision.reasons


def test_refusal_under_regroup_names_the_regrouped_test_and_min_gate_n():
    small = {"test_clean": {"accuracy": 0.95, "recall_fractured": 0.95, "n": 150}}
    decision = decide(small, None, POLICY, split_policy={"used": "regroup", "reason": "r"}, contamination=CONTAMINATION)
    assert decision.refused and "the regrouped test holds 150 radiographs, fewer than 200" in decision.reasons[0]
    assert "--min-gate-n" in decision.reasons[0] and "split_policy=regroup" not in decision.reasons[0]
    assert "regrouped test accuracy 0.950 >= 0.900" in decision.reasons


def test_refusal_without_contamination_numbers_still_says_what_to_do():
    small = {"test_clean": {"accuracy": 0.95, "recall_fractured": 0.95, "n": 12}}
    reason = decide(small, None, POLICY).reasons[0]
    assert reason.startswith("the leak-free test holds 12 radiographs, fewer than 200") and "regroup" in reason


def test_exactly_min_n_is_judged_and_min_n_zero_judges_anything():
    assert decide(splits(0.95, 0.95), None, POLICY).refused is False  # n == 200
    tiny = {"test_clean": {"accuracy": 0.95, "recall_fractured": 0.95, "n": 3}}
    assert decide(tiny, None, GatePolicy(min_n=0)).passed is True


def test_paired_comparison_goes_into_reasons_and_block_without_changing_the_rule():
    from boneflow.gate.paired import paired_comparison

    # 200 images: both right on 170, candidate only 12, champion only 4, both wrong 14
    cand = [True] * 170 + [True] * 12 + [False] * 4 + [False] * 14
    champ = [True] * 170 + [False] * 12 + [True] * 4 + [False] * 14
    paired = paired_comparison(cand, champ)
    decision = decide(splits(0.91, 0.95), splits(0.87, 0.9), POLICY, champion_run_id="r1", paired=paired)
    assert decision.passed
    text = " | ".join(decision.reasons)
    assert "candidate right where the champion is wrong on 12, the reverse on 4" in text
    assert "McNemar exact p = 0.0768" in text and "no significant difference" in text
    assert decision.to_dict()["paired"]["candidate_only"] == 12
    # a significant improvement does not excuse a regression, and vice versa: the rule decides
    assert decide(splits(0.85, 0.95), splits(0.87, 0.9), POLICY, paired=paired).passed is False


def test_an_empty_judged_split_is_refused_whatever_the_floors():
    """Under split_policy=official on the Kaggle set the leak-free test can be empty: the gate
    must refuse (not crash) and say why, even with min_n 0 and floors 0."""
    from boneflow.gate.decision import decide
    from boneflow.settings import GatePolicy

    empty = {"n": 0, "accuracy": None, "recall_fractured": None, "accuracy_ci95": [0.0, 1.0]}
    decision = decide(
        {"test_clean": empty, "val": {"n": 10, "accuracy": 0.9}},
        None,
        GatePolicy(min_accuracy=0.0, min_recall=0.0, min_n=0),
        split_policy={"used": "official"},
        contamination={"official_test": 121, "copies_in_train_val": {"any": 121}},
    )
    assert not decision.passed and decision.refused
    assert "holds no radiographs" in decision.reasons[0] and "split_policy=regroup" in decision.reasons[0]


def test_reasons_count_radiographs_and_carry_the_intervals():
    judged = {
        "accuracy": 0.95,
        "accuracy_ci95": [0.88, 0.99],
        "recall_fractured": 0.95,
        "recall_fractured_ci95": [0.85, 0.98],
        "n": 400,
        "files": 1150,
    }
    decision = decide({"test_clean": judged}, None, POLICY)
    assert decision.passed and decision.n == 400 and decision.split_name == "leak-free test"
    assert (
        "leak-free test accuracy 0.950 [95% CI 0.880, 0.990] >= 0.900 (by radiograph: 400 radiographs, 1150 files)"
        in (decision.message)
    )
    assert "fractured recall 0.950 [95% CI 0.850, 0.980] >= 0.900" in decision.message


@pytest.mark.parametrize(("n", "refused"), [(199, True), (200, False), (201, False)])
def test_min_gate_n_counts_radiographs_at_its_boundary(n, refused):
    judged = {"accuracy": 0.95, "recall_fractured": 0.95, "n": n, "files": 5 * n}
    decision = decide({"test_clean": judged}, None, GatePolicy(min_n=200))
    assert decision.refused is refused and decision.passed is not refused
    if refused:
        assert f"holds {n} radiographs, fewer than 200" in decision.message
