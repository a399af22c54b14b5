"""What a person calls each evaluation split, in one place, so the gate's reasons, the report's
tables, the quality artifact and `boneflow run`'s summary agree. Two packed splits can hold the
same images (under `regroup` the judged `test_clean` is the regrouped `test`; under `official`
the packed `test` is `official_test`): `shown_splits` keeps one of each such pair.
"""

from __future__ import annotations

from collections.abc import Iterable

SPLIT_ORDER = ("oof", "val", "test", "test_clean", "official_test")  # report order
_WORDS = {
    "oof": "out-of-fold set",
    "val": "validation",
    "test": "official test",
    "test_clean": "leak-free test",
    "official_test": "official test",
}
_REGROUPED = {**_WORDS, "test": "regrouped test", "test_clean": "regrouped test"}


def regrouped(split_policy: dict | None) -> bool:
    return (split_policy or {}).get("used") == "regroup"


def split_words(split: str, split_policy: dict | None = None) -> str:
    """The name of `split` under the split policy that made the pack."""
    return (_REGROUPED if regrouped(split_policy) else _WORDS).get(split, split)


def shown_splits(splits: Iterable[str], split_policy: dict | None = None) -> list[str]:
    """`splits` in report order, each set of images once: under `regroup` the regrouped test
    is shown as the judged `test_clean`; otherwise `official_test` is dropped beside `test`."""
    held = list(splits)
    alias = "test" if regrouped(split_policy) else "official_test"
    twin = "test_clean" if alias == "test" else "test"
    keep = [s for s in held if not (s == alias and twin in held)]
    return [s for s in SPLIT_ORDER if s in keep] + [s for s in keep if s not in SPLIT_ORDER]
