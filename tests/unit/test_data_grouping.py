"""Duplicate groups: byte-identical, re-encoded and turned copies (turned on an expanded
canvas, then squashed to a square, as the Kaggle set's `N-rotated1-rotated2.jpg` files were,
chained too, by small or large angles, mirrored or not) join their original; distinct
demo-like images stay apart."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from boneflow.demo.dataset import dataset_root, write_demo_dataset
from boneflow.duplicates.grouping import find_duplicate_groups
from boneflow.duplicates.rotated_copies import _components, rotated_links
from boneflow.intake.decode import decode_xray
from boneflow.intake.thumbnails import group_thumbnail
from boneflow.intake.validate import _hashes
from boneflow.settings import GroupingSettings

PACK_SIZE = 256  # what validation decodes to at the default 224 px crop


def _jpeg(img: Image.Image, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _turned(data: bytes, angle: float) -> bytes:
    """The Kaggle set's augmentation: turn on an expanded black canvas, squash to 224 x 224."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    turned = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=0)
    return _jpeg(turned.resize((224, 224), Image.Resampling.BICUBIC))


def _describe(files: list[bytes]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sha256, perceptual hashes, grouping thumbnails) of encoded images, decoded as validation does."""
    import hashlib

    sha, hashes, thumbs = [], [], []
    for data in files:
        _, grey, _ = decode_xray(data, PACK_SIZE)
        sha.append(hashlib.sha256(data).hexdigest())
        hashes.append(_hashes(grey))
        thumbs.append(group_thumbnail(grey))
    return sha, np.stack(hashes), np.stack(thumbs)


@pytest.fixture(scope="module")
def demo_images(tmp_path_factory) -> list[bytes]:
    """300 distinct demo radiographs (80-400 px, aspect 0.6-1), as encoded files."""
    path = tmp_path_factory.mktemp("grouping-demo")
    planted = write_demo_dataset(path, n=300, seed=11, defects=False)
    root = dataset_root(path)
    return [(root / im["path"]).read_bytes() for im in planted["images"]]


@pytest.fixture(scope="module")
def with_turned_copies(demo_images):
    """The demo images plus turned copies of six of them (two non-square originals among them):
    single turns either way, and turns of turns. Returns (files, base index of each copy)."""
    sizes = [Image.open(io.BytesIO(d)).size for d in demo_images]
    aspects = [min(w, h) / max(w, h) for w, h in sizes]
    wide = [i for i in np.argsort(aspects)[:2]]  # the most non-square originals
    bases = wide + [i for i in range(0, 40, 10) if i not in wide]
    files, base_of = list(demo_images), {}
    for k, base in enumerate(bases):
        first = _turned(demo_images[base], (-1) ** k * (8 + 4 * k))
        second = _turned(first, (-1) ** (k + 1) * (12 + 2 * k))  # a turn of the turned copy
        for data in (first, second, _turned(demo_images[base], (-1) ** (k + 1) * 22)):
            base_of[len(files)] = base
            files.append(data)
    return files, base_of


def test_turned_copies_join_their_original_and_nothing_else(with_turned_copies):
    files, base_of = with_turned_copies
    sha, hashes, thumbs = _describe(files)
    groups = find_duplicate_groups(sha, hashes, thumbs).group
    for copy, base in base_of.items():
        assert groups[copy] == groups[base], (copy, base)
    family_of = {**{c: b for c, b in base_of.items()}, **{b: b for b in base_of.values()}}
    for i in range(len(files)):
        members = np.flatnonzero(groups == groups[i]).tolist()
        assert {family_of.get(j, j) for j in members} == {family_of.get(i, i)}, members


@pytest.mark.parametrize(
    "angles, mirrored",
    [
        ([30.0, 30.0], False),
        ([40.0, 90.0, 40.0], True),
        ([-25.0, -90.0, -30.0], False),
        ([135.0], False),
        ([-60.0, -45.0], True),
    ],
)
def test_large_angle_turned_copies_join_their_original_and_nothing_else(demo_images, angles, mirrored):
    from boneflow.demo.copies import turned_copy

    bases = [5, 17, 29]
    files = demo_images[:60] + [turned_copy(demo_images[b], angles, mirrored=mirrored) for b in bases]
    sha, hashes, thumbs = _describe(files)
    groups = find_duplicate_groups(sha, hashes, thumbs).group
    assert [groups[60 + k] == groups[b] for k, b in enumerate(bases)] == [True] * len(bases)
    assert len(set(groups.tolist())) == 60


def test_no_any_angle_candidates_leaves_large_turns_apart(demo_images):
    from boneflow.demo.copies import turned_copy

    files = demo_images[:60] + [turned_copy(demo_images[5], [40.0, 90.0, 40.0], mirrored=True)]
    sha, hashes, thumbs = _describe(files)
    small_only = GroupingSettings(any_angle_candidates=0)
    assert find_duplicate_groups(sha, hashes, thumbs, settings=small_only).group[60] != 5
    assert find_duplicate_groups(sha, hashes, thumbs).group[60] == find_duplicate_groups(sha, hashes, thumbs).group[5]


def test_distinct_demo_images_are_not_linked(demo_images):
    sha, hashes, thumbs = _describe(demo_images)
    assert rotated_links(thumbs) == []
    groups = find_duplicate_groups(sha, hashes, thumbs)
    assert len(set(groups.group.tolist())) == len(demo_images)


def test_byte_identical_files_are_grouped(demo_images):
    files = demo_images[:20] + [demo_images[3], demo_images[7], demo_images[3]]
    sha, hashes, thumbs = _describe(files)
    groups = find_duplicate_groups(sha, hashes, thumbs)
    assert groups.group[20] == groups.group[22] == groups.group[3]
    assert groups.group[21] == groups.group[7]
    assert groups.link_kind[20] == groups.link_kind[3] == "exact"
    assert len(set(groups.group.tolist())) == 20


def test_reencoded_resized_and_mirrored_copies_are_grouped(demo_images):
    originals = [Image.open(io.BytesIO(d)) for d in demo_images[:3]]
    copies = [
        _jpeg(originals[0], 40),
        _jpeg(originals[1].resize((originals[1].width // 2, originals[1].height // 2)), 85),
        _jpeg(originals[2].transpose(Image.Transpose.FLIP_LEFT_RIGHT), 90),
    ]
    files = demo_images[:20] + copies
    sha, hashes, thumbs = _describe(files)
    groups = find_duplicate_groups(sha, hashes, thumbs)
    for k in range(3):
        assert groups.group[20 + k] == groups.group[k], k
        assert groups.near_group[20 + k] == groups.near_group[k], k
    assert len(set(groups.group.tolist())) == 20


def test_components_match_sparse_components():
    import torch

    from boneflow.duplicates.grouping import _component_labels

    rng = np.random.default_rng(0)
    n = 200
    b, a = rng.integers(0, n, 150), rng.integers(0, n, 150)
    labels = _components(torch.arange(n), torch.from_numpy(b), torch.from_numpy(a)).numpy()
    expected = _component_labels(n, list(zip(b.tolist(), a.tolist())))
    assert all((labels == labels[i]).tolist() == (expected == expected[i]).tolist() for i in range(n))


def test_component_labels_are_numbered_by_smallest_member():
    from boneflow.duplicates.grouping import _component_labels

    # components {0, 4}, {1}, {2, 3, 5}, {6}: numbered in the order of their smallest member,
    # whatever the order or direction of the links
    assert _component_labels(7, [(5, 3), (4, 0), (3, 2)]).tolist() == [0, 1, 2, 2, 0, 2, 3]
    assert _component_labels(3, []).tolist() == [0, 1, 2]
    assert _component_labels(0, []).tolist() == []


def test_one_image_has_no_rotated_links(demo_images):
    _, _, thumbs = _describe(demo_images[:1])
    assert rotated_links(thumbs, settings=GroupingSettings()) == []


def test_demo_set_large_angle_families_are_whole_and_no_two_truth_groups_merge(demo):
    """The planted families (small-angle, large-angle with an octagonal frame and mirrors)
    each land in one group, and no group joins files that planted.json keeps apart."""
    from demo_helpers import planted_groups

    path, planted = demo
    root = path / planted["root"]
    truth = {m: i for i, g in enumerate(planted_groups(planted)) for m in g}
    files, data = [], []
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        try:
            decode_xray(p.read_bytes(), PACK_SIZE, min_side=64)
        except Exception:  # the planted defects: validation excludes them
            continue
        files.append(p.relative_to(root).as_posix())
        data.append(p.read_bytes())
    sha, hashes, thumbs = _describe(data)
    groups = find_duplicate_groups(sha, hashes, thumbs).group
    where = {f: int(g) for f, g in zip(files, groups.tolist())}
    families = planted["turned_families"] + planted["rotated_families"]
    assert planted["turned_families"] and all(len({where[m] for m in fam["members"]}) == 1 for fam in families)
    by_group: dict[int, set] = {}
    for f in files:
        by_group.setdefault(where[f], set()).add(truth.get(f, f))
    assert all(len(t) == 1 for t in by_group.values()), [t for t in by_group.values() if len(t) > 1]


def test_rotated_search_leaves_the_thread_count_as_it_found_it(demo_images):
    import torch

    _, _, thumbs = _describe(demo_images[:8])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rotated_links(thumbs)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
