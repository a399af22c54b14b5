"""Leakage audit: every planted copy type found with the right transform; leak-free test excludes them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest_data import demo, demo_validated  # noqa: E402,F401

from boneflow.data.leakage import near_pairs  # noqa: E402


def test_every_planted_copy_is_found(demo_validated):
    _, planted, _, _, audit = demo_validated
    found = {(p["a"], p["b"]): p for p in audit.report["pairs"]}
    assert {c["kind"] for c in planted["copies"]} == {"exact", "reencoded", "resized", "mirrored"}
    for copy in planted["copies"]:
        pair = found.get((copy["original"], copy["copy"]))
        assert pair is not None, copy
        assert pair["distance"] <= 4
        if copy["kind"] == "mirrored":
            assert pair["transform"] == "mirror"
        if copy["kind"] == "exact":
            assert pair["distance"] == 0


def test_leakfree_test_excludes_the_copies(demo_validated):
    _, planted, _, validated, audit = demo_validated
    test_copies = {c["copy"] for c in planted["copies"] if c["copy"].startswith("test/")}
    assert test_copies and not test_copies & set(audit.leakfree_test)
    assert test_copies <= set(audit.report["leaking_test"])
    all_test = {r.relpath for r in validated.records if r.split == "test"}
    assert set(audit.leakfree_test) | set(audit.report["leaking_test"]) == all_test


def test_near_pairs_matches_brute_force():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**63, size=(70, 5), dtype=np.uint64)
    b = rng.integers(0, 2**63, size=(90, 5), dtype=np.uint64)
    b[7, 2] = a[3, 0] ^ np.uint64(0b101)  # distance 2 via transform column 2
    b[8, 0] = a[4, 0]
    got = near_pairs(a, b, max_distance=3)
    want = {(i, j) for i in range(70) for j in range(90)
            if min(bin(int(a[i, 0]) ^ int(b[j, t])).count("1") for t in range(5)) <= 3}
    assert set(zip(got[0].tolist(), got[1].tolist())) == want == {(3, 7), (4, 8)}
    assert dict(zip(zip(got[0].tolist(), got[1].tolist()), got[3].tolist()))[(3, 7)] == 2
