"""Assignments that give the official tool's answers while solving far fewer Hungarian problems.

Per-frame matching: the official tool solves one Hungarian problem per frame on a dense score matrix
that is zero except on a few (gt, tracker) pairs. An edge that is the only edge of its connected
component (a gt box overlapping one tracker box that overlaps nothing else) is in every optimal
assignment: leaving it out loses its positive score and gains nothing. Those edges are taken
directly; a frame with any larger component is solved as the official tool solves it, on the whole
frame's matrix, so even ties resolve identically.

Identity: the official tool builds a dense (G + K)^2 cost matrix over all ids of a sequence. Its
optimum is a maximum-weight bipartite matching on the co-occurrence counts, which decomposes over the
connected components of the sparse count graph; its value is unique, whatever assignment attains it.
"""
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def edge_components(rows, cols):
    """Component label of every edge and the number of edges in each component."""
    if len(rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # nodes: the rows that have edges and the columns that have edges, compacted
    r_nodes, r = np.unique(rows, return_inverse=True)
    c_nodes, c = np.unique(cols, return_inverse=True)
    n = len(r_nodes) + len(c_nodes)
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c + len(r_nodes))), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    edge_label = labels[r]
    return edge_label, np.bincount(edge_label)


def solve_frame(g, t, score, g0, t0, ng, nt, min_score):
    """The official per-frame problem: dense [ng, nt] scores, Hungarian, keep pairs above min_score.
    g, t are global rows of the frame's edges, g0/t0 the frame's first rows. Returns global rows."""
    dense = np.zeros((ng, nt))
    dense[g - g0, t - t0] = score
    rows, cols = linear_sum_assignment(-dense)
    ok = dense[rows, cols] > min_score
    return rows[ok] + g0, cols[ok] + t0


def hard_frames(g, t, score_ok, gt_start, focus=None):
    """Frames whose problem is not a set of forced single edges. Returns (forced edge mask [E],
    sorted frame indices needing a full solve)."""
    label, size = edge_components(g[score_ok], t[score_ok])
    forced = np.zeros(len(g), bool)
    hard = np.zeros(len(g), bool)
    forced[score_ok] = size[label] == 1
    multi = size[label] > 1
    if focus is not None:
        has_focus = np.bincount(label, weights=focus[g[score_ok]], minlength=len(size)) > 0
        multi &= has_focus[label]
    hard[score_ok] = multi
    frames = np.unique(np.searchsorted(gt_start, g[hard], "right") - 1)
    return forced, frames


def frame_matches(g, t, score, gt_start, trk_start, min_score=np.finfo("float").eps, focus=None):
    """Per-frame maximum-score matching of every frame, as the official tool's loop gives it.

    g, t [E] global gt/tracker rows of the candidate pairs, in frame order; score [E] > 0 on pairs
    that may match. With `focus` [G] bool only components that touch a focused gt row are solved
    exactly (the caller reads only the matches of focused rows). Returns matched (g [M], t [M])
    sorted by gt row."""
    ok = score > min_score
    forced, frames = hard_frames(g, t, ok, gt_start, focus)
    edge_frame = np.searchsorted(gt_start, g, "right") - 1
    in_hard = np.isin(edge_frame, frames)
    out_g, out_t = [g[forced & ~in_hard]], [t[forced & ~in_hard]]
    bounds = np.searchsorted(edge_frame, np.stack([frames, frames + 1]))
    for f, lo, hi in zip(frames, bounds[0], bounds[1]):
        g0, t0 = gt_start[f], trk_start[f]
        mg, mt = solve_frame(g[lo:hi], t[lo:hi], score[lo:hi], g0, t0, gt_start[f + 1] - g0,
                             trk_start[f + 1] - t0, min_score)
        out_g.append(mg)
        out_t.append(mt)
    mg, mt = np.concatenate(out_g), np.concatenate(out_t)
    order = np.argsort(mg, kind="stable")
    return mg[order], mt[order]


def max_weight_matching(rows, cols, weights):
    """Total weight of a maximum-weight bipartite matching of a sparse graph (weights > 0).

    Components with one edge, or with a single row or a single column, are read off directly; the
    rest are solved densely, each on its own small matrix."""
    if len(rows) == 0:
        return 0.0
    label, size = edge_components(rows, cols)
    total = weights[size[label] == 1].sum()
    multi = np.flatnonzero(size[label] > 1)
    if len(multi) == 0:
        return float(total)
    order = multi[np.argsort(label[multi], kind="stable")]
    lab = label[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    ends = np.r_[starts[1:], len(order)]
    for lo, hi in zip(starts, ends):
        e = order[lo:hi]
        r_nodes, r = np.unique(rows[e], return_inverse=True)
        c_nodes, c = np.unique(cols[e], return_inverse=True)
        if len(r_nodes) == 1 or len(c_nodes) == 1:
            total += weights[e].max()
            continue
        dense = np.zeros((len(r_nodes), len(c_nodes)))
        dense[r, c] = weights[e]
        ri, ci = linear_sum_assignment(dense, maximize=True)
        total += dense[ri, ci].sum()
    return float(total)
