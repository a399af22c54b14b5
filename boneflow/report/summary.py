"""The first screen of a run's report (README, "Honest evaluation": the split policy and why,
the official test's contamination and accuracy beside the honest one; then the operating point
and the paired comparison), the week-by-week quality note, and the markdown cell and table
helpers render.py shares. Every input is optional: packs made before split policies and
contamination counts still render, saying what was not measured.
"""

from __future__ import annotations

from boneflow.evaluate.split_names import regrouped, split_words


def cell(value) -> str:
    """A markdown table cell: – for None, yes/no, floats to 3 decimals, pipes escaped."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _acc(m: dict | None) -> str:
    """Accuracy with its interval and what it counts (radiographs, and the files they hold)."""
    if not m or m.get("accuracy") is None:
        return "–"
    files = f" in {m['files']} files" if m.get("files") is not None else ""
    return f"{with_ci(m, 'accuracy')} (n={m.get('n', '?')} radiographs{files})"


def _num(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def with_ci(m: dict, key: str) -> str:
    """m[key] with its 95 % interval (m[key + "_ci95"]) when recorded."""
    value, ci = m.get(key), m.get(f"{key}_ci95")
    return _num(value) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if value is not None and ci and len(ci) == 2 else "")


def official_test_metrics(splits: dict, split_policy: dict | None) -> dict | None:
    """The dataset's own test split: `official_test` when packed, else `test` unless regrouped."""
    if "official_test" in splits:
        return splits["official_test"]
    return None if regrouped(split_policy) else splits.get("test")


def policy_line(split_policy: dict | None) -> str:
    if not split_policy:
        return (
            "**Split policy:** not recorded (packed before split policies existed): the "
            "dataset's own train/val/test, judged on the leak-free test."
        )
    return (
        f"**Split policy:** `{split_policy.get('used', '?')}` (requested "
        f"`{split_policy.get('requested', '?')}`) — {split_policy.get('reason', 'no reason recorded')}"
    )


def contamination_line(contamination: dict | None) -> str:
    if not contamination or not contamination.get("official_test"):
        return "**Official test contamination:** not measured for this pack."
    total = contamination["official_test"]
    copies = contamination.get("copies_in_train_val") or {}
    kinds = ", ".join(f"{kind} {copies[kind]}" for kind in ("exact", "near", "rotated") if kind in copies)
    any_copy = copies.get("any", 0)
    return (
        f"**Official test contamination:** {any_copy} of {total} official test images "
        f"({100 * any_copy / total:.1f} %) are copies of train/val images"
        + (f" (strongest link: {kinds})" if kinds else "")
        + f"; {contamination.get('leakfree', total - any_copy)} are leak-free."
    )


def accuracy_line(
    splits: dict, split_policy: dict | None, judged: str = "test_clean", contamination: dict | None = None
) -> str:
    honest_name = split_words(judged, split_policy)
    official = official_test_metrics(splits, split_policy)
    total = (contamination or {}).get("official_test")
    copies = ((contamination or {}).get("copies_in_train_val") or {}).get("any")
    why = (
        f" The official figure scores memory as much as skill: {100 * copies / total:.0f} % of its "
        "images are copies of train/val images."
        if total and copies
        else ""
    )
    return (
        f"**Accuracy, official test vs honest:** official test {_acc(official)} · "
        f"{honest_name} {_acc(splits.get(judged))}.{why}"
    )


def operating_point_line(operating_point: dict | None, splits: dict, judged: str = "test_clean") -> str:
    if not operating_point:
        return "**Operating point:** threshold 0.5, temperature 1 (not calibrated in this run)."
    fit = operating_point.get("calibration") or {}
    half = (splits.get(judged) or {}).get("at_0.5") or {}
    at_op = splits.get(judged) or {}
    return (
        f"**Operating point:** threshold {_num(operating_point.get('threshold'))} on P(fractured), "
        f"chosen on validation by radiograph for fractured recall ≥ "
        f"{_num(fit.get('target_recall', fit.get('min_recall')), 2)} (validation "
        f"recall {_num(fit.get('val_recall'))}, specificity {_num(fit.get('val_specificity'))}"
        + ("" if fit.get("target_reached", True) else "; the target was not reached: " + str(fit.get("note")))
        + "). On the "
        f"judged split: recall {_num(at_op.get('recall_fractured'))}, specificity "
        f"{_num(at_op.get('specificity'))} at this threshold; {_num(half.get('recall_fractured'))}, "
        f"{_num(half.get('specificity'))} at 0.5. Temperature {_num(operating_point.get('temperature'), 2)}: "
        f"validation ECE {_num(fit.get('ece_before'))} → {_num(fit.get('ece_after'))}, NLL "
        f"{_num(fit.get('nll_before'))} → {_num(fit.get('nll_after'))}."
    )


def paired_line(gate: dict) -> str | None:
    paired, who = gate.get("paired"), gate.get("champion_run_id")
    if not paired:
        return None
    lo, hi = paired["difference_ci95"]
    return (
        f"**Paired vs champion `{who}`** on the same {paired['n']} radiographs: candidate right where "
        f"the champion is wrong {paired['candidate_only']}, the reverse {paired['champion_only']}; "
        f"McNemar exact p = {paired['mcnemar_p']:.3g}; accuracy difference {paired['difference']:+.3f} "
        f"[95 % CI {lo:+.3f}, {hi:+.3f}] ({paired['interval_method']})."
    )


def honest_summary(metrics: dict, gate: dict) -> str:
    """The report's first section, as markdown paragraphs."""
    splits, policy = metrics.get("splits", {}), metrics.get("split_policy")
    lines = [
        policy_line(policy),
        contamination_line(metrics.get("contamination")),
        accuracy_line(splits, policy, gate.get("split") or "test_clean", metrics.get("contamination")),
        operating_point_line(metrics.get("operating_point"), splits, gate.get("split") or "test_clean"),
        paired_line(gate),
    ]
    return "\n\n".join(line for line in lines if line)


def _decision(gate: dict) -> str:
    if gate.get("passed"):
        return "PASSED — promoted to champion"
    if gate.get("refused"):
        return f"REFUSED — too few radiographs to judge (n={gate.get('n')})"
    return "REJECTED — not promoted"


def render_quality(metrics: dict) -> str:
    """The `boneflow-quality` note: this run's honest metrics beside the champion's, and the
    decision; the same layout every run so the artifact history reads as a trend."""
    gate, splits = metrics.get("gate", {}), metrics.get("splits", {})
    judged = gate.get("split") or "test_clean"
    ours, theirs = splits.get(judged, {}), gate.get("champion") or {}
    champion = gate.get("champion_run_id")
    rows = [
        ["accuracy [95% CI]", _acc(ours), _acc(theirs)],
        ["fractured recall", _num(ours.get("recall_fractured")), _num(theirs.get("recall_fractured"))],
        ["specificity", _num(ours.get("specificity")), _num(theirs.get("specificity"))],
        ["AUROC", with_ci(ours, "auroc"), with_ci(theirs, "auroc")],
        ["threshold", _num(ours.get("threshold")), _num(theirs.get("threshold"))],
    ]
    who = f"champion `{champion}`" if champion else "champion (none)"
    official = official_test_metrics(splits, metrics.get("split_policy"))
    parts = [
        f"# boneflow quality — run `{metrics.get('run_id', '?')}`",
        f"**Decision: {_decision(gate)}**",
        markdown_table([split_words(judged, metrics.get("split_policy")), "this run", who], rows),
        "By radiograph; recall and specificity at each model's operating threshold. "
        f"Official test (contaminated): {_acc(official)}.",
        policy_line(metrics.get("split_policy")),
        paired_line(gate) or "",
    ]
    fingerprint = (metrics.get("dataset") or {}).get("fingerprint")
    if fingerprint:
        parts.append(f"Dataset fingerprint `{str(fingerprint)[:16]}`.")
    return "\n\n".join(p for p in parts if p) + "\n"
