"""Demo data carries the Kaggle set's duplicate structure: byte-identical copies under other names
within and across splits, and families of small-angle rotated copies (black corners, squashed to
224 x 224, JPEG) spanning train/val/test, each recorded in planted.json."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from boneflow.demo.copies import (
    ANGLE_RANGE,
    TURN_RANGE,
    family_count,
    rotated_copy,
    turned_copy,
)
from boneflow.demo.dataset import write_demo_dataset
from boneflow.intake.layout import SPLITS
from demo_helpers import planted_groups


def _split(rel: str) -> str:
    return rel.split("/")[0]


def test_planted_json_lists_exact_and_rotated_copies(demo):
    path, planted = demo
    on_disk = json.loads((path / "planted.json").read_text())
    dups = on_disk["duplicates"]
    assert dups == planted["duplicates"]
    assert {d["kind"] for d in dups} == {"exact", "rotated", "turned"}
    assert all((path / planted["root"] / d[k]).is_file() for d in dups for k in ("copy", "of", "base"))
    assert len({d["copy"] for d in dups}) == len(dups)
    images = {im["path"] for im in planted["images"]}
    assert all(d["base"] in images and d["copy"] not in images for d in dups)
    rotated = [d for d in dups if d["kind"] == "rotated"]
    assert any(len(d["angles"]) >= 2 for d in rotated), "no chained rotation"
    assert all(ANGLE_RANGE[0] <= abs(a) <= ANGLE_RANGE[1] for d in rotated for a in d["angles"])


def test_exact_copies_are_byte_identical_under_kaggle_names(demo):
    path, planted = demo
    root = path / planted["root"]
    exact = [d for d in planted["duplicates"] if d["kind"] == "exact"]
    for d in exact:
        assert (root / d["copy"]).read_bytes() == (root / d["of"]).read_bytes(), d
        stem, ext = Path(d["of"]).stem, Path(d["of"]).suffix
        assert re.fullmatch(re.escape(stem) + r"( - Copy)?( \(\d+\))?" + re.escape(ext), Path(d["copy"]).name), d
        assert Path(d["copy"]).name != Path(d["of"]).name
    assert any(_split(d["copy"]) == _split(d["of"]) for d in exact), "no copy within a split"
    assert any(_split(d["copy"]) != _split(d["of"]) for d in exact), "no copy across splits"


def _corner_max(img: np.ndarray) -> int:
    return int(max(img[:3, :3].max(), img[:3, -3:].max(), img[-3:, :3].max(), img[-3:, -3:].max()))


def test_rotated_copies_are_224_jpegs_with_black_corners_made_as_recorded(demo):
    path, planted = demo
    root = path / planted["root"]
    rotated = [d for d in planted["duplicates"] if d["kind"] == "rotated"]
    assert rotated
    for d in rotated:
        data = (root / d["copy"]).read_bytes()
        img = Image.open(io.BytesIO(data))
        assert (img.format, img.size, img.mode) == ("JPEG", (224, 224), "RGB"), d
        assert _corner_max(np.asarray(img.convert("L"))) <= 12, d
        assert Path(d["copy"]).name == re.sub(r"\.\w+$", "", Path(d["of"]).name) + re.search(
            r"-rotated\d+\.jpg$", d["copy"]
        ).group(0)
        # the record says how it was made: redoing the last step from its parent gives the same bytes
        assert rotated_copy((root / d["of"]).read_bytes(), d["angles"][-1]) == data
    # the bases (synthetic radiographs) have no black corners: the corners come from the rotation
    bases = {d["base"] for d in rotated}
    assert all(_corner_max(np.asarray(Image.open(root / b).convert("L"))) > 12 for b in bases)


def test_families_span_the_splits_within_one_class(demo):
    path, planted = demo
    rotated = [d for d in planted["duplicates"] if d["kind"] == "rotated"]
    bases = sorted({d["base"] for d in rotated})
    assert len(bases) == family_count(planted["n"], 8) == 2
    for base in bases:
        members = {base} | {d["copy"] for d in planted["duplicates"] if d["base"] == base}
        assert 3 <= len(members) <= 6
        assert {_split(m) for m in members} == set(SPLITS), members
        assert len({m.split("/")[1] for m in members}) == 1, members
        assert {"base": base, "members": sorted(members)} in [
            {"base": f["base"], "members": sorted(f["members"])} for f in planted["rotated_families"]
        ]
    assert len(planted["rotated_families"]) == len(bases)


def test_planted_groups_join_each_copy_with_its_base(demo):
    _, planted = demo
    groups = planted_groups(planted)
    by_member = {m: i for i, g in enumerate(groups) for m in g}
    for d in planted["duplicates"]:
        assert by_member[d["copy"]] == by_member[d["of"]] == by_member[d["base"]]
    for c in planted["copies"]:
        assert by_member[c["copy"]] == by_member[c["original"]]
    assert sum(len(g) for g in groups) == len(by_member)  # disjoint


def test_family_count_scales_with_the_set_and_stays_a_small_fraction(tmp_path):
    assert family_count(2500, 8) == 8 and family_count(80, 8) == 2 and family_count(25, 8) == 1
    assert family_count(2500, 0) == 0
    planted = write_demo_dataset(tmp_path, n=25, seed=4, families=0)
    assert planted["duplicates"] == []


def test_large_angle_families_are_chained_turns_with_a_frame_made_as_recorded(demo):
    path, planted = demo
    root = path / planted["root"]
    turned = [d for d in planted["duplicates"] if d["kind"] == "turned"]
    families = planted["turned_families"]
    assert len(families) == family_count(planted["n"], 8) == 2
    assert {f["base"] for f in families} == {d["base"] for d in turned}
    assert not {f["base"] for f in families} & {d["base"] for d in planted["duplicates"] if d["kind"] != "turned"}
    for fam in families:
        copies = [d for d in turned if d["base"] == fam["base"]]
        assert 2 <= len(copies) <= 3 and sorted(fam["members"]) == sorted([fam["base"]] + [d["copy"] for d in copies])
        assert {_split(m) for m in fam["members"]} == set(SPLITS), fam
    totals = []
    for d in turned:
        data = (root / d["copy"]).read_bytes()
        img = Image.open(io.BytesIO(data))
        assert (img.format, img.size) == ("JPEG", (224, 224)), d
        assert _corner_max(np.asarray(img.convert("L"))) <= 12, d
        assert (
            d["of"] == d["base"]
            and turned_copy((root / d["base"]).read_bytes(), d["angles"], mirrored=d["mirrored"]) == data
        )
        small = [a for a in d["angles"] if abs(a) != 90]
        assert len(small) == 2 and all(TURN_RANGE[0] <= abs(a) <= TURN_RANGE[1] for a in small), d
        assert len({a > 0 for a in d["angles"]}) == 1, d  # one direction
        totals.append(abs(sum(d["angles"])))
    assert all(45 <= t <= 180 for t in totals) and min(totals) < 90 < max(totals)
    assert {d["mirrored"] for d in turned} == {True, False}
