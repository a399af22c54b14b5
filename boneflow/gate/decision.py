"""The promotion gate: a pure function of the candidate's metrics, the champion's metrics
re-scored on the same split, and a policy (GatePolicy, boneflow/settings.py). The rules are in
docs/ARCHITECTURE.md ("Evaluation and the gate") and README ("Honest evaluation", item 5); the
first model is promoted on the floors alone. Reasons are sentences with the numbers, for passes
and failures alike, so the report and the flow's message explain the decision.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING

from pydantic import Field

from boneflow.contracts import Contract, Scores
from boneflow.errors import GateError
from boneflow.evaluate.split_names import regrouped, split_words
from boneflow.settings import GatePolicy

if TYPE_CHECKING:  # annotations only: keeps numpy out of `boneflow --help`
    from boneflow.gate.paired import PairedComparison

# What the champion's metrics on the judged split keep in the decision (report, trend artifact).
_CHAMPION_FIELDS = (
    "n",
    "files",
    "accuracy",
    "accuracy_ci95",
    "recall_fractured",
    "specificity",
    "auroc",
    "auroc_ci95",
    "threshold",
)


OOF = "oof"  # the judged split of a cross-fitted run: every radiograph, out of fold

# What a rejected run is called (the retrain flow's Failed state is named so): the CLI and the
# failure hook read this name, never the wording of the message.
GATE_REJECTED = "GateRejected"


class GateDecision(Contract):
    """The gate's verdict: the stage contract between gate and publish (boneflow/contracts.py)."""

    passed: bool
    reasons: list[str] = Field(default_factory=list)
    policy: dict = Field(default_factory=dict)
    champion_run_id: str | None = None
    split: str = "test_clean"  # the judged split
    split_name: str = "leak-free test"  # what it is called everywhere (evaluate/split_names.py)
    n: int | None = None  # radiographs in it
    refused: bool = False  # too few radiographs to judge
    paired: dict | None = None  # the PairedComparison against the champion, as a dict
    champion: dict | None = None  # the champion's metrics on the judged split (_CHAMPION_FIELDS)

    def to_dict(self) -> dict:
        """The metrics.json `gate` block."""
        return self.model_dump()

    @property
    def message(self) -> str:
        verdict = "passed" if self.passed else "rejected"
        return f"Gate {verdict}: " + "; ".join(self.reasons)


def _metric(splits: dict, split: str, name: str, whose: str) -> float:
    if split not in splits:
        raise GateError(
            f"The gate reads split {split!r} but the {whose} metrics hold only "
            f"{sorted(splits)}; evaluate on {split!r} first."
        )
    value = splits[split].get(name)
    if value is None:
        raise GateError(f"{whose} metrics for split {split!r} have no {name!r}.")
    return float(value)


def _pair(value: float, other: float) -> tuple[str, str]:
    """Format two numbers with 3 decimals, or 4 when 3 would make them look equal."""
    digits = 4 if f"{value:.3f}" == f"{other:.3f}" and value != other else 3
    return f"{value:.{digits}f}", f"{other:.{digits}f}"


def _refusal(where: str, n: int, policy: GatePolicy, split_policy: dict | None, contamination: dict | None) -> str:
    """Why the gate will not judge, and what to change."""
    text = (
        f"the {where} holds no radiographs: nothing to judge"
        if n == 0
        else f"the {where} holds {n} radiographs, fewer than {policy.min_n}: too few to judge"
    )
    official = (contamination or {}).get("official_test")
    copies = ((contamination or {}).get("copies_in_train_val") or {}).get("any")
    if policy.split == OOF:
        return text + " — add radiographs (the full dataset holds more) or lower min_gate_n knowingly (--min-gate-n)"
    if regrouped(split_policy):
        return text + (
            " — judge every radiograph with cross-fitting (--folds 5), add radiographs (the full dataset "
            "gives a larger test) or lower min_gate_n knowingly (--min-gate-n)"
        )
    if official and copies is not None:
        share = 100 * copies / official
        return text + (
            f"; the official test is {share:.0f} % copies of train/val ({copies} of "
            f"{official}) — use split_policy=regroup"
        )
    return text + "; use split_policy=regroup to pool the splits, or lower min_gate_n knowingly"


def _floor_reasons(splits: dict, policy: GatePolicy, where: str) -> tuple[bool, list[str]]:
    acc = _metric(splits, policy.split, "accuracy", "candidate")
    rec = _metric(splits, policy.split, "recall_fractured", "candidate")
    threshold = splits[policy.split].get("threshold")
    at = f" at threshold {threshold:.3f}" if threshold is not None and threshold != 0.5 else ""
    judged = splits[policy.split]
    passed, reasons = True, []
    for label, value, floor, interval, suffix in (
        ("accuracy", acc, policy.min_accuracy, judged.get("accuracy_ci95"), ""),
        ("fractured recall", rec, policy.min_recall, judged.get("recall_fractured_ci95"), at),
    ):
        shown, floor_shown = _pair(value, floor)
        ok = value >= floor
        passed &= ok
        ci = f" [95% CI {interval[0]:.3f}, {interval[1]:.3f}]" if interval and len(interval) == 2 else ""
        reasons.append(f"{where} {label} {shown}{ci} {'>=' if ok else '<'} {floor_shown}{suffix}")
    if reasons and judged.get("files") is not None:
        reasons[0] += f" (by radiograph: {judged.get('n')} radiographs, {judged['files']} files)"
    return passed, reasons


def _champion_reasons(
    acc: float,
    champion_splits: dict,
    policy: GatePolicy,
    where: str,
    champion_run_id: str | None,
    paired: PairedComparison | None,
) -> tuple[bool, list[str]]:
    champ_acc = _metric(champion_splits, policy.split, "accuracy", "champion")
    who = f"champion {champion_run_id}" if champion_run_id else "champion"
    if policy.split == OOF and paired is not None and paired.n:
        # Two cross-fitted runs judged different radiograph sets: compare on the ones both
        # predicted out of fold (the paired counts), not on each run's own set.
        acc = (paired.both_right + paired.candidate_only) / paired.n
        champ_acc = (paired.both_right + paired.champion_only) / paired.n
        where = f"{where} (the {paired.n} radiographs both runs predicted)"
    drop = champ_acc - acc
    passed = drop <= policy.max_regression + 1e-12
    verdict = (
        f"{where} accuracy {acc:.3f} vs {who}'s {champ_acc:.3f}: change "
        f"{-drop:+.3f} within the allowed regression {policy.max_regression:.3f}"
        if passed
        else f"{where} accuracy {acc:.3f} regresses {drop:.3f} from {who}'s "
        f"{champ_acc:.3f} (allowed {policy.max_regression:.3f})"
    )
    pairing = (
        paired.sentence(who)
        if paired is not None
        else f"no paired comparison with {who}: the two share no radiograph judged under the same label"
    )
    return passed, [verdict, pairing]


def decide(
    candidate_splits: dict,
    champion_splits: dict | None,
    policy: GatePolicy,
    *,
    champion_run_id: str | None = None,
    paired: PairedComparison | None = None,
    split_policy: dict | None = None,
    contamination: dict | None = None,
) -> GateDecision:
    """candidate_splits / champion_splits: the `splits` block of metrics.json. paired: the two
    models on the judged split's images (gate/paired.py). split_policy / contamination: the
    packed manifest's `split_policy` and the leakage report's `contamination`, used to say what
    to change when the judged split is too small."""
    where = split_words(policy.split, split_policy)
    n = candidate_splits.get(policy.split, {}).get("n")
    # An empty split is refused whatever min_n says: there is nothing to judge.
    refused = n is not None and (n < policy.min_n or n == 0)
    champion = None
    if n == 0:  # no accuracy to check, nor to compare with a champion
        passed, reasons = False, list[str]()
    else:
        passed, reasons = _floor_reasons(candidate_splits, policy, where)
        if champion_splits is None:
            reasons.append("no champion yet: the first model is judged on the floors alone")
        else:
            acc = _metric(candidate_splits, policy.split, "accuracy", "candidate")
            kept, more = _champion_reasons(acc, champion_splits, policy, where, champion_run_id, paired)
            passed &= kept
            reasons += more
            champion = {k: champion_splits[policy.split].get(k) for k in _CHAMPION_FIELDS}
    if refused:
        reasons.insert(0, _refusal(where, n, policy, split_policy, contamination))
    return GateDecision(
        passed=passed and not refused,
        reasons=reasons,
        policy=policy.to_dict(),
        champion_run_id=champion_run_id,
        split=policy.split,
        split_name=where,
        n=n,
        refused=refused,
        paired=asdict(paired) if paired is not None else None,
        champion=champion,
    )


def judge(candidate: Scores, champion: Scores | None, policy: GatePolicy) -> GateDecision:
    """The gate stage: decide() on two evaluated models, paired radiograph by radiograph on the
    judged split (`oof` for a cross-fitted candidate: README, "Cross-fitting")."""
    from boneflow.gate.paired import paired_from_predictions

    if OOF in candidate.splits:
        policy = replace(policy, split=OOF)
    paired, note = None, None
    if champion is not None and policy.split not in champion.splits:
        note = (
            f"no fair comparison with champion {champion.run_id}: it has no out-of-fold predictions "
            "(published with folds=1 or before cross-fitting, and its ensemble saw every radiograph); "
            "judged on the floors alone"
        )
        champion = None
    if champion is not None:
        paired = paired_from_predictions(
            candidate.predictions.get(policy.split), champion.predictions.get(policy.split)
        )
    decision = decide(
        candidate.splits,
        champion.splits if champion is not None else None,
        policy,
        champion_run_id=champion.run_id if champion is not None else None,
        paired=paired,
        split_policy=candidate.split_policy,
        contamination=candidate.contamination,
    )
    if note is None:
        return decision
    reasons = [r for r in decision.reasons if not r.startswith("no champion yet")] + [note]
    return decision.model_copy(update={"reasons": reasons})
