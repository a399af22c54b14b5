"""The promotion gate (TFX-style blessing): a pure function of the candidate's metrics, the
champion's metrics re-scored on the same split, and a policy.

A candidate passes when, on `policy.split` (the leak-free test split by default):
- accuracy >= min_accuracy and fractured recall >= min_recall (the absolute floors), and
- when there is a champion: champion accuracy - candidate accuracy <= max_regression.
The first model (no champion) is promoted on the floors alone. Reasons are sentences with the
numbers, written both for passes and failures, so the report and the flow's message explain
the decision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from boneflow.errors import BoneflowError

_SPLIT_WORDS = {"test_clean": "leak-free test", "test": "official test", "val": "validation"}


class GateError(BoneflowError):
    """The metrics handed to the gate lack what the policy needs."""


@dataclass(frozen=True)
class GatePolicy:
    min_accuracy: float = 0.90  # lowest accuracy on `split` that may be promoted
    min_recall: float = 0.90  # lowest fractured recall (sensitivity) on `split`
    max_regression: float = 0.01  # largest accuracy drop vs the champion on the same split
    split: str = "test_clean"  # which split the gate reads (leak-free test)

    def __post_init__(self):
        for name in ("min_accuracy", "min_recall", "max_regression"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise GateError(f"GatePolicy.{name}={value} must be between 0 and 1.")

    @classmethod
    def from_config(cls, cfg) -> "GatePolicy":
        """From a RetrainConfig (or anything with the three threshold fields)."""
        return cls(min_accuracy=cfg.min_accuracy, min_recall=cfg.min_recall,
                   max_regression=cfg.max_regression)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    policy: dict = field(default_factory=dict)
    champion_run_id: str | None = None

    def to_dict(self) -> dict:
        """The metrics.json `gate` block."""
        return {"passed": self.passed, "reasons": list(self.reasons), "policy": dict(self.policy),
                "champion_run_id": self.champion_run_id}

    @property
    def message(self) -> str:
        verdict = "passed" if self.passed else "rejected"
        return f"Gate {verdict}: " + "; ".join(self.reasons)


def _metric(splits: dict, split: str, name: str, whose: str) -> float:
    if split not in splits:
        raise GateError(f"The gate reads split {split!r} but the {whose} metrics hold only "
                        f"{sorted(splits)}; evaluate on {split!r} first.")
    value = splits[split].get(name)
    if value is None:
        raise GateError(f"{whose} metrics for split {split!r} have no {name!r}.")
    return float(value)


def _pair(value: float, other: float) -> tuple[str, str]:
    """Format two numbers with 3 decimals, or 4 when 3 would make them look equal."""
    digits = 4 if f"{value:.3f}" == f"{other:.3f}" and value != other else 3
    return f"{value:.{digits}f}", f"{other:.{digits}f}"


def decide(candidate_splits: dict, champion_splits: dict | None, policy: GatePolicy, *,
           champion_run_id: str | None = None) -> GateDecision:
    """candidate_splits / champion_splits: the `splits` block of metrics.json."""
    where = _SPLIT_WORDS.get(policy.split, policy.split)
    acc = _metric(candidate_splits, policy.split, "accuracy", "candidate")
    rec = _metric(candidate_splits, policy.split, "recall_fractured", "candidate")
    reasons: list[str] = []
    passed = True
    for label, value, floor in (("accuracy", acc, policy.min_accuracy),
                                ("fractured recall", rec, policy.min_recall)):
        shown, floor_shown = _pair(value, floor)
        if value < floor:
            passed = False
            reasons.append(f"{where} {label} {shown} < {floor_shown}")
        else:
            reasons.append(f"{where} {label} {shown} >= {floor_shown}")
    if champion_splits is None:
        reasons.append("no champion yet: the first model is judged on the floors alone")
    else:
        champ_acc = _metric(champion_splits, policy.split, "accuracy", "champion")
        drop = champ_acc - acc
        who = f"champion {champion_run_id}" if champion_run_id else "champion"
        if drop > policy.max_regression + 1e-12:
            passed = False
            reasons.append(f"{where} accuracy {acc:.3f} regresses {drop:.3f} from {who}'s "
                           f"{champ_acc:.3f} (allowed {policy.max_regression:.3f})")
        else:
            reasons.append(f"{where} accuracy {acc:.3f} vs {who}'s {champ_acc:.3f}: change "
                           f"{-drop:+.3f} within the allowed regression {policy.max_regression:.3f}")
    return GateDecision(passed=passed, reasons=reasons, policy=policy.to_dict(),
                        champion_run_id=champion_run_id)
