"""Two models scored on the same radiographs (duplicate groups, joined by group id, each model
at its own threshold): which one is right where the other is wrong.

Unpaired intervals of two accuracies overlap far more than the paired difference is uncertain,
because both models get most images right together; the paired view counts the discordant
ones only, b (candidate right, champion wrong) and c (the reverse). McNemar's exact test: under
"equally good" b is Binomial(b + c, 1/2). The interval of the accuracy difference is Newcombe's
hybrid score interval for paired proportions (method 10 of Newcombe 1998, Stat Med 17:2635):
unlike the Wald interval it stays inside [-1, 1] and is not zero-width when b = c = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from boneflow.contracts import Predictions
from boneflow.evaluate.metrics import wilson_interval
from boneflow.evaluate.radiographs import by_radiograph, group_of_each_file

INTERVAL_METHOD = "Newcombe hybrid score (paired, method 10)"


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for discordant counts b and c."""
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(min(b, c), b + c, 0.5).pvalue)


def newcombe_paired_interval(a: int, b: int, c: int, d: int) -> list[float]:
    """95 % interval of p1 - p2 where p1 = (a + b) / n, p2 = (a + c) / n: a both right, b only
    the first right, c only the second right, d both wrong."""
    n = a + b + c + d
    if n == 0:
        return [-1.0, 1.0]
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n)
    l2, u2 = wilson_interval(a + c, n)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    # Newcombe's continuity-corrected correlation: shrink a positive cross term by n/2
    corrected = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
    phi = corrected / math.sqrt(margins) if margins > 0 else 0.0
    theta = p1 - p2
    lower = theta - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    upper = theta + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    return [max(-1.0, lower), min(1.0, upper)]


@dataclass(frozen=True)
class PairedComparison:
    n: int
    both_right: int
    candidate_only: int  # b: candidate right, champion wrong
    champion_only: int  # c: champion right, candidate wrong
    both_wrong: int
    difference: float  # candidate accuracy - champion accuracy = (b - c) / n
    difference_ci95: list[float]
    mcnemar_p: float
    interval_method: str = INTERVAL_METHOD

    def sentence(self, who: str) -> str:
        lo, hi = self.difference_ci95
        verdict = "a significant" if self.mcnemar_p < 0.05 else "no significant"
        return (
            f"paired vs {who} on the same {self.n} radiographs: candidate right where the champion "
            f"is wrong on {self.candidate_only}, the reverse on {self.champion_only}; McNemar exact "
            f"p = {self.mcnemar_p:.3g} ({verdict} difference at 5 %); accuracy difference "
            f"{self.difference:+.3f} [95 % CI {lo:+.3f}, {hi:+.3f}] ({self.interval_method})"
        )


def paired_comparison(candidate_correct, champion_correct) -> PairedComparison:
    """From two boolean arrays over the same images in the same order."""
    cand = np.asarray(candidate_correct, dtype=bool)
    champ = np.asarray(champion_correct, dtype=bool)
    if cand.shape != champ.shape:
        raise ValueError(f"paired comparison needs the same images: {cand.shape} vs {champ.shape}")
    a, b = int((cand & champ).sum()), int((cand & ~champ).sum())
    c, d = int((~cand & champ).sum()), int((~cand & ~champ).sum())
    n = a + b + c + d
    return PairedComparison(
        n=n,
        both_right=a,
        candidate_only=b,
        champion_only=c,
        both_wrong=d,
        difference=(b - c) / n if n else 0.0,
        difference_ci95=newcombe_paired_interval(a, b, c, d),
        mcnemar_p=mcnemar_exact_p(b, c),
    )


def radiograph_results(predictions: Predictions) -> dict[str, tuple[int, bool]]:
    """{group: (label, called right)}: each radiograph's mean probability against the model's
    own threshold (evaluate/radiographs.py)."""
    groups = group_of_each_file(predictions.paths, predictions.groups or None)
    rad = by_radiograph(groups, predictions.labels, predictions.probability)
    cut = by_radiograph(groups, predictions.labels, predictions.file_thresholds()).probability
    right = (rad.probability >= cut).astype(int) == rad.labels
    return {g: (int(label), bool(ok)) for g, label, ok in zip(rad.groups, rad.labels, right)}


def paired_from_predictions(candidate: Predictions | None, champion: Predictions | None) -> PairedComparison | None:
    """The two models paired radiograph by radiograph (by group id) on the radiographs both
    judged under the same label; None when they share none."""
    if candidate is None or champion is None:
        return None
    ours, theirs = radiograph_results(candidate), radiograph_results(champion)
    common = sorted(g for g in ours.keys() & theirs.keys() if ours[g][0] == theirs[g][0])
    if not common:
        return None
    return paired_comparison([ours[g][1] for g in common], [theirs[g][1] for g in common])
