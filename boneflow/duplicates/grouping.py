"""Duplicate groups over the whole dataset: every kept image with its copies, in any split.

Exact (sha256), near (validation's 256-bit perceptual hashes, Hamming distance) and rotated
links (turned, squashed and mirrored copies, which no perceptual hash survives: searched on the
distinct images' 64x64 thumbnails by rotated_candidates.py and rotated_polar.py, verified by
rotated_copies.py) are joined into connected components, so a chain of turns joins through its
intermediate images. Pixels decide, never file names. How, and how well: README, "Honest
evaluation: duplicate groups and the split policy" (scripts/measure_grouping.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from boneflow.settings import GroupingSettings

_BLOCK = 256  # rows of `a` per block: 256 x N_b x 5 uint64 temporaries stay a few tens of MB
LINK_KINDS = ("exact", "near", "rotated")  # strongest first


@dataclass(frozen=True)
class DuplicateGroups:
    """`group[i]`: group number of record i (numbered by first member); `near_group[i]` the
    same from exact and near links only (tells "rotated" copies apart). `link_kind[i]`: the
    strongest kind of link record i has to another member of its group (None when alone).
    `links`: (i, j, kind) edges that were found (exact edges point at the first file; rotated edges
    are enough to join each group, not every turned pair in it)."""

    group: np.ndarray
    near_group: np.ndarray
    link_kind: list[str | None]
    links: list[tuple[int, int, str]]

    def members(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i, g in enumerate(self.group.tolist()):
            out.setdefault(g, []).append(i)
        return out


def _component_labels(n: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Connected components of n records joined by `pairs`, numbered 0, 1, ... in the order of
    each component's smallest member (so the numbering depends on the records, not on the
    order the links were found)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rows, cols = np.array(pairs, dtype=np.int64).reshape(-1, 2).T
    adjacency = coo_matrix((np.ones(len(pairs), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, labels = connected_components(adjacency, directed=False)
    _, first = np.unique(labels, return_index=True)  # smallest member of each component
    return np.argsort(np.argsort(first))[labels]


def exact_links(file_sha: list[str]) -> tuple[list[int], list[tuple[int, int, str]]]:
    """Indices of the first file of each byte-identical set, and exact links to them."""
    first: dict[str, int] = {}
    for i, sha in enumerate(file_sha):
        first.setdefault(sha, i)
    return list(first.values()), [(i, first[sha], "exact") for i, sha in enumerate(file_sha) if first[sha] != i]


def _near_links(hashes: np.ndarray, distinct: list[int], max_distance: int) -> list[tuple[int, int, str]]:
    """Near links among the distinct files: perceptual hashes within max_distance bits."""
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
    distinct, links = exact_links(file_sha)
    links += _near_links(hashes, distinct, settings.near_max_distance)
    from boneflow.duplicates.rotated_copies import rotated_links

    links += [(distinct[a], distinct[b], "rotated") for a, b in rotated_links(thumbs[distinct], settings=settings)]
    kind: list[str | None] = [None] * n
    for a, b, k in sorted(links, key=lambda link: LINK_KINDS.index(link[2]), reverse=True):
        kind[a] = kind[b] = k  # weakest first, so each record ends with its strongest link's kind
    group = _component_labels(n, [(a, b) for a, b, _ in links])
    near_group = _component_labels(n, [(a, b) for a, b, k in links if k != "rotated"])
    return DuplicateGroups(group=group, near_group=near_group, link_kind=kind, links=links)


def near_pairs(
    hashes_a: np.ndarray, hashes_b: np.ndarray, *, max_distance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, distance, transform index) of pairs with min_t d(a_i identity, b_j transform t) <= max_distance.
    `hashes_a`: uint64 [Na, T, W] (transform 0 used), `hashes_b`: uint64 [Nb, T, W]; W words per hash."""
    if len(hashes_a) == 0 or len(hashes_b) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    found = []
    for start in range(0, len(hashes_a), _BLOCK):
        block = hashes_a[start : start + _BLOCK, 0]  # [blk, W]
        dist = np.zeros((len(block), len(hashes_b), hashes_b.shape[1]), dtype=np.uint16)  # [blk, Nb, T]
        for w in range(hashes_b.shape[2]):
            dist += np.bitwise_count(block[:, None, None, w] ^ hashes_b[None, :, :, w])
        best_t = dist.argmin(axis=2)
        best = np.take_along_axis(dist, best_t[..., None], axis=2)[..., 0]
        ii, jj = np.nonzero(best <= max_distance)
        found.append((ii + start, jj, best[ii, jj].astype(np.int64), best_t[ii, jj].astype(np.int64)))
    return tuple(np.concatenate(x) for x in zip(*found))  # type: ignore[return-value]
