"""Per-view region votes to one object id per Gaussian, consistent across views.

Region ids are local to a view, so masks are associated through the Gaussians themselves: two
neighbouring Gaussians (k nearest in space, no farther apart than the local spacing allows) belong
together when, in the views that see both, their votes mostly fall in the same region, and their
colours are alike. Objects are the connected pieces of that graph, so a mask that covers the object
in one view and a mask that covers it in another get one id whenever their vote sets overlap. Pieces
too small to be objects join the neighbour they touch most; Gaussians no view saw take the object of
their nearest seen neighbours; isolated specks stay ungrouped (-1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

UNGROUPED = -1


@dataclass
class AssociationOptions:
    neighbours: int = 10
    gap_factor: float = 2.5  # neighbours farther than this x the local spacing are not connected
    min_agreement: float = 0.5  # weighted share of co-visible views with the same region
    max_colour_difference: float = 0.35  # RGB distance (0..sqrt 3) above which neighbours are cut
    min_group_fraction: float = 0.002  # pieces below this share of the seen Gaussians are not objects
    merge_rounds: int = 6


def _neighbour_edges(points: np.ndarray, k: int, gap_factor: float):
    k = min(k + 1, len(points))
    tree = cKDTree(points)
    dist, idx = tree.query(points, k=k)
    dist, idx = dist[:, 1:], idx[:, 1:]
    spacing = np.median(dist[:, : min(3, dist.shape[1])], axis=1) if dist.shape[1] else np.zeros(len(points))
    a = np.repeat(np.arange(len(points)), dist.shape[1])
    b = idx.ravel()
    d = dist.ravel()
    near = d <= gap_factor * np.maximum(spacing[a], spacing[b])
    return a[near], b[near], a, b


def _agreement(L: np.ndarray, W: np.ndarray, a: np.ndarray, b: np.ndarray, block: int = 1 << 21) -> np.ndarray:
    """Per edge: the share of the views seeing both ends (each weighted by its weaker vote) in which
    both vote for the same region. In blocks of edges, so memory stays bounded for millions of them."""
    out = np.zeros(len(a))
    for s in range(0, len(a), block):
        ea, eb = a[s:s + block], b[s:s + block]
        both = np.minimum(W[:, ea], W[:, eb])  # (V, E)
        same = (L[:, ea] == L[:, eb]) & (L[:, ea] >= 0)
        covisible = both.sum(0)
        out[s:s + block] = np.where(covisible > 0, (both * same).sum(0) / np.maximum(covisible, 1e-12), 0.0)
    return out


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _merge_small(comp: np.ndarray, a: np.ndarray, b: np.ndarray, min_size: int, rounds: int) -> np.ndarray:
    """Pieces under ``min_size`` join the piece they share most neighbour pairs with (largest on ties)."""
    for _ in range(rounds):
        sizes = np.bincount(comp)
        small = sizes[comp] < min_size
        cross = (comp[a] != comp[b]) & small[a]
        if not cross.any():
            break
        src, dst = comp[a[cross]], comp[b[cross]]
        pair_keys, counts = np.unique(np.stack([src, dst], 1), axis=0, return_counts=True)
        # best destination per small piece: most shared pairs, then the larger piece
        order = np.lexsort((-sizes[pair_keys[:, 1]], -counts, pair_keys[:, 0]))
        pair_keys = pair_keys[order]
        first = np.ones(len(pair_keys), bool)
        first[1:] = pair_keys[1:, 0] != pair_keys[:-1, 0]
        target = np.arange(len(sizes))
        target[pair_keys[first, 0]] = pair_keys[first, 1]
        # follow chains (a small piece may point at another small piece that moves this round)
        for _ in range(8):
            nxt = target[target]
            if np.array_equal(nxt, target):
                break
            target = nxt
        comp = np.unique(target[comp], return_inverse=True)[1]
    return comp


def by_size(ids: np.ndarray) -> np.ndarray:
    """The same grouping with ids renumbered 0.. by decreasing size (-1 stays -1)."""
    out = np.full(ids.shape, UNGROUPED, np.int32)
    grouped = ids >= 0
    present, inverse, counts = np.unique(ids[grouped], return_inverse=True, return_counts=True)
    rank = np.empty(len(present), np.int32)
    rank[np.argsort(-counts, kind="stable")] = np.arange(len(present), dtype=np.int32)
    out[grouped] = rank[inverse]
    return out


def associate(
    labels: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    colours: np.ndarray,
    options: AssociationOptions | None = None,
) -> np.ndarray:
    """Object ids (N,) int32 from per-view votes ``labels`` (V, N) and ``weights`` (V, N); ids are
    numbered by size (0 = largest), ``UNGROUPED`` for Gaussians that belong to no object."""
    opt = options or AssociationOptions()
    n = means.shape[0]
    result = np.full(n, UNGROUPED, np.int32)
    seen = (weights > 0).any(axis=0)
    seen_idx = np.nonzero(seen)[0]
    if len(seen_idx) == 0:
        return result
    if len(seen_idx) == 1:
        result[seen_idx] = 0
        return result

    pts = np.asarray(means, np.float64)[seen_idx]
    L = labels[:, seen_idx]
    W = weights[:, seen_idx]
    rgb = np.asarray(colours, np.float64)[seen_idx]
    a, b, all_a, all_b = _neighbour_edges(pts, opt.neighbours, opt.gap_factor)

    agreement = _agreement(L, W, a, b)
    colour_gap = np.linalg.norm(rgb[a] - rgb[b], axis=1)
    joined = (agreement >= opt.min_agreement) & (colour_gap <= opt.max_colour_difference)

    comp = _components(len(seen_idx), a[joined], b[joined])
    min_size = max(2, int(opt.min_group_fraction * len(seen_idx)))
    comp = _merge_small(comp, all_a, all_b, min_size, opt.merge_rounds)

    sizes = np.bincount(comp)
    ids = by_size(np.where(sizes[comp] >= min_size, comp, UNGROUPED))  # specks with no neighbour to join: -1
    result[seen_idx] = ids

    unseen_idx = np.nonzero(~seen)[0]
    grouped = ids >= 0
    if len(unseen_idx) and grouped.any():
        tree = cKDTree(pts[grouped])
        _, nearest = tree.query(np.asarray(means, np.float64)[unseen_idx], k=min(3, int(grouped.sum())))
        votes = ids[grouped][np.asarray(nearest).reshape(len(unseen_idx), -1)]
        pick = votes[:, 0]
        if votes.shape[1] == 3:  # the majority of three: the first unless the other two agree
            pick = np.where((votes[:, 1] == votes[:, 2]) & (votes[:, 0] != votes[:, 1]), votes[:, 1], pick)
        result[unseen_idx] = pick
    return result
