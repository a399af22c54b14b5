"""Duplicate groups over the whole dataset: every kept image with its copies, in any split.

The Kaggle set is mostly copies of fewer radiographs, made three ways, and each needs its own
detector (pixels are the signal; file names are not trusted):

- exact: byte-identical files (sha256), e.g. `N (1).jpg`, `N - Copy.jpg`;
- near: re-encoded, resized, mirrored or 90-degree-turned copies: the 256-bit perceptual
  hashes of validation (image vs mirror/rot90/180/270 of the other), Hamming distance;
- rotated: the `N-rotated1-rotated2.jpg` augmentations: the radiograph turned by a small angle
  with `expand` (black corners, content shrunk by 1/(|cos|+|sin|)), squashed back to a square,
  often a rotated copy of a rotated copy. A perceptual hash does not survive that.

Rotated copies are found on the distinct images' 64x64 squashed thumbnails
(rotated_copies.py): stage 1 proposes candidates by correlating the central disc (no black
corner reaches it up to ~35 degrees) of 16x16 thumbnails with every image warped as a turn with
expand and a squash would warp it, on a coarse angle grid (one matrix product per angle, top-k
per row and per column); stage 2 aligns each candidate pair (a turn-and-scale map refined by
Gauss-Newton steps on a 16 -> 32 -> 64 px pyramid) and keeps it only when the fine texture
matches after alignment (band-passed pixels and edge strength outside black areas): the
low-frequency silhouette of a wrist is shared by many different radiographs, the texture is not.
Groups are the connected components (union-find) of exact, near and rotated links, so a
chain of rotations joins through its intermediate images.

Measured on the shared Kaggle sample and the demo sets (scripts/measure_grouping.py): see the
README's "Duplicate groups" section for recall, false-positive rate and time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

THUMB_SIDE = 64  # squashed (not padded) thumbnail side kept per image by validation
LINK_KINDS = ("exact", "near", "rotated")  # strongest first


@dataclass(frozen=True)
class GroupingSettings:
    """How copies are recognised. Defaults measured on real radiographs (see module docstring)."""

    near_max_distance: int = 26  # of 256 phash bits; the leakage audit's threshold
    rotation_min_corr: float = 0.6  # band-passed correlation that makes a rotated copy
    rotation_max_angle: float = 36.0  # degrees searched either way
    candidate_step: float = 6.0  # coarse angle grid of stage 1, degrees
    candidates: int = 8  # stage-1 candidates kept per image, in each direction
    candidate_min_corr: float = 0.6  # stage-1 correlation below which a pair is not verified


@dataclass(frozen=True)
class DuplicateGroups:
    """`group[i]`: group number of record i (numbered by first member); `near_group[i]` the
    same from exact and near links only (tells "rotated" copies apart). `link_kind[i]`: the
    strongest kind of link record i has to another member of its group (None when alone).
    `links`: (i, j, kind) edges that were found (exact edges point at the first file)."""

    group: np.ndarray
    near_group: np.ndarray
    link_kind: list[str | None]
    links: list[tuple[int, int, str]]

    def members(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i, g in enumerate(self.group.tolist()):
            out.setdefault(g, []).append(i)
        return out


def group_thumbnail(grey) -> np.ndarray:
    """uint8 [THUMB_SIDE, THUMB_SIDE]: the decoded greyscale image squashed to a square (the
    dataset's copies were squashed, so squashing, not padding, makes them comparable)."""
    from PIL import Image

    small = grey.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.uint8)


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, a: int) -> int:
        parent = self.parent
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:  # path compression
            parent[a], a = root, parent[a]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def labels(self) -> np.ndarray:
        roots = np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)
        _, numbered = np.unique(roots, return_inverse=True)
        return numbered.astype(np.int64)


def _exact_links(file_sha: list[str]) -> tuple[list[int], list[tuple[int, int, str]]]:
    """Indices of the first file of each byte-identical set, and exact links to them."""
    first: dict[str, int] = {}
    distinct, links = [], []
    for i, sha in enumerate(file_sha):
        if sha in first:
            links.append((i, first[sha], "exact"))
        else:
            first[sha] = i
            distinct.append(i)
    return distinct, links


def _near_links(hashes: np.ndarray, distinct: list[int], max_distance: int) -> list[tuple[int, int, str]]:
    from boneflow.data.leakage import near_pairs

    if len(distinct) < 2:
        return []
    h = hashes[distinct]
    ii, jj, _, _ = near_pairs(h, h, max_distance=max_distance)
    keep = ii < jj  # each unordered pair once; identity vs transforms of the other covers both
    return [(distinct[a], distinct[b], "near") for a, b in zip(ii[keep].tolist(), jj[keep].tolist())]


def find_duplicate_groups(
    file_sha: list[str], hashes: np.ndarray, thumbs: np.ndarray, *, settings: GroupingSettings = GroupingSettings()
) -> DuplicateGroups:
    """Group records by exact, near and rotated copies. `file_sha[i]`, `hashes[i]`
    (uint64 [T, W] perceptual hashes) and `thumbs[i]` (uint8 [64, 64]) describe record i."""
    n = len(file_sha)
    distinct, links = _exact_links(file_sha)
    links += _near_links(hashes, distinct, settings.near_max_distance)
    if len(distinct) >= 2:
        from boneflow.data.rotated_copies import rotated_links

        pairs = rotated_links(thumbs[distinct], settings=settings)
        links += [(distinct[a], distinct[b], "rotated") for a, b in pairs]
    uf, uf_near = _UnionFind(n), _UnionFind(n)
    kind: list[str | None] = [None] * n
    rank = {k: r for r, k in enumerate(LINK_KINDS)}
    for a, b, k in links:
        uf.union(a, b)
        if k != "rotated":
            uf_near.union(a, b)
        for x in (a, b):
            current = kind[x]
            if current is None or rank[k] < rank[current]:
                kind[x] = k
    return DuplicateGroups(group=uf.labels(), near_group=uf_near.labels(), link_kind=kind, links=links)


def rotation_scale(angle_deg: float) -> float:
    """Content scale after a turn with `expand` squashed back to the original square."""
    a = math.radians(angle_deg)
    return 1.0 / (abs(math.cos(a)) + abs(math.sin(a)))
