"""Paired comparison of two models: McNemar's exact p against scipy, Newcombe's interval against
the values published for it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from boneflow.contracts import Predictions
from boneflow.gate.paired import (
    mcnemar_exact_p,
    newcombe_paired_interval,
    paired_comparison,
    paired_from_predictions,
)


@pytest.mark.parametrize("b,c", [(0, 0), (1, 0), (12, 4), (4, 12), (7, 7), (30, 12), (0, 9), (150, 171), (3, 40)])
def test_mcnemar_exact_p_equals_scipy_binomial_test(b, c):
    expected = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
    assert mcnemar_exact_p(b, c) == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_mcnemar_hand_computed_case():
    # b=1, c=5: n=6, P(X<=1) = (1 + 6) / 64, doubled
    assert mcnemar_exact_p(1, 5) == pytest.approx(14 / 64)


# (a both right, b first only, c second only, d both wrong) -> interval of p1 - p2, as published
# for Newcombe's method 10 (Newcombe 1998, Stat Med 17:2635, Table II), to 4 decimals.
NEWCOMBE_1998 = [
    ((36, 12, 2, 0), (0.0569, 0.3404)),
    ((18, 12, 2, 18), (0.0562, 0.3290)),
]


@pytest.mark.parametrize("table,expected", NEWCOMBE_1998)
def test_newcombe_interval_matches_the_published_examples(table, expected):
    lo, hi = newcombe_paired_interval(*table)
    assert (round(lo, 4), round(hi, 4)) == expected


def test_newcombe_interval_without_discordant_pairs_is_not_zero_width():
    lo, hi = newcombe_paired_interval(53, 0, 0, 1)
    assert round(lo, 4) == -0.0729 and 0 < hi < 0.1  # published lower limit -0.0729


def test_paired_comparison_counts_and_difference():
    cand = np.array([1, 1, 1, 0, 0, 1, 1, 0], dtype=bool)
    champ = np.array([1, 0, 0, 1, 0, 1, 0, 0], dtype=bool)
    p = paired_comparison(cand, champ)
    assert (p.both_right, p.candidate_only, p.champion_only, p.both_wrong, p.n) == (2, 3, 1, 2, 8)
    assert p.difference == pytest.approx(cand.mean() - champ.mean())
    assert p.difference_ci95[0] < p.difference < p.difference_ci95[1]
    assert p.mcnemar_p == pytest.approx(binomtest(3, 4, 0.5).pvalue)


def test_paired_from_predictions_pairs_radiographs_by_group_id():
    def seen(probability, paths, groups, labels, threshold=0.5):
        return Predictions(
            paths=list(paths),
            labels=list(labels),
            predicted=[int(p >= threshold) for p in probability],
            probability=list(probability),
            groups=list(groups),
            threshold=threshold,
        )

    # candidate: radiograph A (fractured) from two files, B (healthy) from one, C (fractured)
    cand = seen([0.9, 0.3, 0.2, 0.4], ["a1", "a2", "b", "c"], ["A", "A", "B", "C"], [1, 1, 0, 1])
    # champion scored another file order, with its own threshold 0.35: A 0.4 right, B wrong, C right
    champ = seen([0.4, 0.4, 0.5], ["c", "a1", "b"], ["C", "A", "B"], [1, 1, 0], threshold=0.35)
    p = paired_from_predictions(cand, champ)
    # A: candidate mean 0.6 right, champion right; B: candidate right, champion wrong; C: cand wrong
    assert p.n == 3 and (p.both_right, p.candidate_only, p.champion_only) == (1, 1, 1)
    # a radiograph the champion judged under another label is not a pair; none shared -> None
    relabelled = seen([0.4, 0.4, 0.5], ["c", "a1", "b"], ["C", "A", "B"], [0, 1, 0], threshold=0.35)
    assert paired_from_predictions(cand, relabelled).n == 2
    assert paired_from_predictions(cand, seen([0.1], ["z"], ["Z"], [0])) is None
    assert paired_from_predictions(cand, None) is None


# Values of the hand-written exact test (integer tail sums) before it was replaced by scipy.
MCNEMAR_BEFORE_SCIPY = [
    ((0, 0), 1.0),
    ((0, 5), 0.0625),
    ((3, 9), 0.14599609375),
    ((20, 30), 0.20263875106454066),
    ((9, 0), 0.00390625),
    ((150, 171), 0.26426746280792063),
]


@pytest.mark.parametrize("counts,expected", MCNEMAR_BEFORE_SCIPY)
def test_mcnemar_exact_p_unchanged(counts, expected):
    p = mcnemar_exact_p(*counts)
    assert p == pytest.approx(expected, abs=1e-9, rel=0) and type(p) is float
