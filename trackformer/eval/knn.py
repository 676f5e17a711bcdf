"""Exact k-nearest-neighbour search by inner product, memory bounded by chunking.

Two engines give the same lists (up to the order of exact ties):
- "faiss": `IndexFlatIP`, moved to the GPUs when faiss was built with them, queried chunk by chunk;
- "torch": blocked matrix products with a running top-k per row. When the queries are the gallery
  the similarity matrix is symmetric, so each off-diagonal block is computed once and serves both
  its rows and (transposed) its columns: half the multiply-adds of a plain search.
Peak extra memory is O(chunk_size * block) floats plus the [N, k] result, never [N, N].
"""
import math

import numpy as np
import torch


def _drop_self(dist: np.ndarray, idx: np.ndarray, row0: int, k: int):
    """Remove each row's own index from a (k + 1)-long result; rows that lack it lose their last."""
    self_hit = idx == (np.arange(len(idx)) + row0)[:, None]  # [b, k + 1]
    order = np.argsort(self_hit, axis=1, kind="stable")[:, :k]  # the self entry sorts last
    return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)


def faiss_knn(query: np.ndarray, gallery: np.ndarray, k: int, exclude_self: bool = False,
              chunk_size: int = 4096, use_gpu: bool = True):
    import faiss

    index = faiss.IndexFlatIP(gallery.shape[1])
    if use_gpu and faiss.get_num_gpus() > 0 and k + exclude_self <= 2048:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(gallery)
    sims = np.empty((len(query), k), dtype=np.float32)
    ids = np.empty((len(query), k), dtype=np.int64)
    for s in range(0, len(query), chunk_size):
        d, i = index.search(query[s:s + chunk_size], k + int(exclude_self))
        if exclude_self:
            d, i = _drop_self(d, i, s, k)
        sims[s:s + len(d)], ids[s:s + len(d)] = d, i
    return sims, ids


def _merge(best_v, best_i, rows, v, i, k):
    """Fold a block's candidates (v, i) [b, k'] into the running top-k of `rows`."""
    cv = torch.cat([best_v[rows], v], 1)
    ci = torch.cat([best_i[rows], i], 1)
    tv, ti = cv.topk(k, dim=1)
    best_v[rows] = tv
    best_i[rows] = ci.gather(1, ti)


def torch_knn(query: torch.Tensor, gallery: torch.Tensor, k: int, exclude_self: bool = False,
              chunk_size: int = 4096):
    """Running top-k over blocks of the similarity matrix; symmetric when `exclude_self`."""
    nq, ng = len(query), len(gallery)
    dev = query.device
    best_v = torch.full((nq, k), -math.inf, device=dev)
    best_i = torch.full((nq, k), -1, dtype=torch.long, device=dev)
    b = chunk_size
    # two reused block buffers: fresh [b, b] allocations each block cost page faults at this size
    buf = torch.empty(b * b, device=dev)
    buf_t = torch.empty(b * b, device=dev) if exclude_self else None
    for i0 in range(0, nq, b):
        i1 = min(i0 + b, nq)
        rows = slice(i0, i1)
        # symmetric: block (i, j) for j >= i only; it also answers the rows of block j
        for j0 in range(i0 if exclude_self else 0, ng, b):
            j1 = min(j0 + b, ng)
            block = buf[:(i1 - i0) * (j1 - j0)].view(i1 - i0, j1 - j0)
            sims = torch.mm(query[i0:i1], gallery[j0:j1].T, out=block)  # [bi, bj]
            if exclude_self and j0 == i0:
                sims.fill_diagonal_(-math.inf)
            kk = min(k, j1 - j0)
            v, i = sims.topk(kk, dim=1)
            _merge(best_v, best_i, rows, v, i + j0, k)
            if exclude_self and j0 != i0:
                kk = min(k, i1 - i0)
                cols = buf_t[:sims.numel()].view(j1 - j0, i1 - i0).copy_(sims.T)  # the columns' view
                v, i = cols.topk(kk, dim=1)
                _merge(best_v, best_i, slice(j0, j1), v, i + i0, k)
    return best_v, best_i


def exact_knn(query, gallery, k: int, exclude_self: bool = False, backend: str = "auto",
              chunk_size: int = 4096, device: str = "cpu"):
    """The k most similar gallery rows of each query by inner product -> (sims [Nq, k], idx [Nq, k]).

    `exclude_self`: the queries *are* the gallery and each row's own index is skipped.
    """
    if backend == "auto":
        backend = "torch" if (exclude_self or str(device).startswith("cuda")) else "faiss"
    if backend == "faiss":
        q = np.ascontiguousarray(np.asarray(query, dtype=np.float32))
        g = np.ascontiguousarray(np.asarray(gallery, dtype=np.float32))
        return faiss_knn(q, g, k, exclude_self, chunk_size, use_gpu=str(device).startswith("cuda"))
    if backend != "torch":
        raise ValueError(f"unknown knn backend {backend!r} (faiss | torch | auto)")
    q = torch.as_tensor(np.asarray(query, dtype=np.float32), device=device)
    g = q if exclude_self else torch.as_tensor(np.asarray(gallery, dtype=np.float32), device=device)
    v, i = torch_knn(q, g, k, exclude_self, chunk_size)
    return v.cpu().numpy(), i.cpu().numpy()
