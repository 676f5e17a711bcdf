"""Retrieval metrics for embedding models: Recall@K, MAP@R, R-precision and NMI.

All ranking metrics come out of one exact nearest-neighbour pass. The pass keeps only a short list
per query (k = max(K_recall, R_max) where that is small, else R_max), because MAP@R and R-precision
only look at the first R results and Recall@K only needs the rank of the first correct result: the
few queries whose first correct result lies beyond the short list get their rank by counting, in a
second pass over just those rows, the gallery items more similar than their best positive. That
makes Recall@1000 on SOP cost little more than a search for 12 neighbours.

Conventions follow pytorch-metric-learning's `AccuracyCalculator`: when the gallery is the query
set, the query itself is excluded *by index* (not by distance: duplicates still count), R is the
number of other gallery items of the query's class, queries without any positive are left out of
the ranking metrics, and NMI is the arithmetic-mean normalization of k-means clusters (k = number of
classes) against the labels. Similarity is the inner product, so pass L2-normalized embeddings (the
ranking then equals the Euclidean one).
"""
import math
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from .knn import exact_knn


def normalized_mutual_info(labels_true, labels_pred) -> float:
    """NMI with the arithmetic mean of the two entropies (scikit-learn's default)."""
    a = np.unique(np.asarray(labels_true), return_inverse=True)[1]
    b = np.unique(np.asarray(labels_pred), return_inverse=True)[1]
    n = len(a)
    if n == 0:
        return float("nan")
    table = np.zeros((a.max() + 1, b.max() + 1), dtype=np.float64)
    np.add.at(table, (a, b), 1.0)
    pa, pb, pab = table.sum(1) / n, table.sum(0) / n, table / n
    ha = -np.sum(pa[pa > 0] * np.log(pa[pa > 0]))
    hb = -np.sum(pb[pb > 0] * np.log(pb[pb > 0]))
    nz = pab > 0
    mi = np.sum(pab[nz] * (np.log(pab[nz]) - np.log(np.outer(pa, pb)[nz])))
    if ha == 0 and hb == 0:  # one cluster and one class: identical partitions
        return 1.0
    denom = (ha + hb) / 2
    return float(max(mi, 0.0) / denom) if denom > 0 else 0.0


def kmeans_labels(x: np.ndarray, k: int, niter: int = 20, seed: int = 1234) -> np.ndarray:
    """faiss k-means (GPU when faiss has one); the cluster index of each row."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    # min_points_per_centroid only silences a warning; the sampling cap (256 per centroid) stays as in PML
    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, gpu=faiss.get_num_gpus() > 0, verbose=False,
                      min_points_per_centroid=1)
    km.train(x)
    return km.index.search(x, 1)[1][:, 0]


def _first_positive_rank(query, q_labels, gallery, g_labels, rows, self_index, chunk_size, device):
    """For `rows` of the query set, how many gallery items are strictly more similar than the
    query's most similar positive (self excluded): the 0-based rank of the first correct result."""
    out = np.empty(len(rows), dtype=np.int64)
    g = torch.as_tensor(gallery, device=device)
    gl = torch.as_tensor(g_labels, device=device)
    for s in range(0, len(rows), chunk_size):
        r = torch.as_tensor(rows[s:s + chunk_size], device=device)
        sims = torch.as_tensor(query, device=device)[r] @ g.T  # [b, Ng]
        if self_index:
            sims[torch.arange(len(r), device=device), r] = -math.inf
        pos = gl[None, :] == torch.as_tensor(q_labels, device=device)[r][:, None]  # [b, Ng]
        if self_index:
            pos[torch.arange(len(r), device=device), r] = False
        best = torch.where(pos, sims, torch.full_like(sims, -math.inf)).amax(1, keepdim=True)  # [b, 1]
        out[s:s + len(r)] = (sims > best).sum(1).cpu().numpy()
    return out


def retrieval_metrics(
    embeddings,
    labels,
    ks: Sequence[int] = (1, 2, 4, 8),
    query_embeddings=None,
    query_labels=None,
    nmi: bool = True,
    map_at_r: bool = True,
    backend: str = "auto",
    chunk_size: int = 4096,
    device: Optional[str] = None,
    kmeans_seed: int = 1234,
) -> Dict[str, float]:
    """Retrieval metrics of `query_embeddings` against the gallery `embeddings`.

    Without `query_embeddings` every gallery item is a query and is excluded from its own results
    by index. Returns `R@k` for each k, `MAP@R`, `RP` (R-precision) and `NMI` (k-means on the
    queries). `backend`: "faiss", "torch" (blocked matrix products; symmetric when queries are the
    gallery) or "auto" (torch on CUDA or for the symmetric case, faiss otherwise).
    """
    gallery = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
    g_labels = np.asarray(labels).reshape(-1)
    self_index = query_embeddings is None
    if self_index:
        query, q_labels = gallery, g_labels
    else:
        query = np.ascontiguousarray(np.asarray(query_embeddings, dtype=np.float32))
        q_labels = np.asarray(query_labels).reshape(-1)
    if len(gallery) != len(g_labels) or len(query) != len(q_labels):
        raise ValueError("embeddings and labels must have the same length")
    ks = sorted(int(k) for k in ks)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"

    # R per query: gallery items of its class, minus itself
    classes, g_inv = np.unique(g_labels, return_inverse=True)
    counts = np.bincount(g_inv, minlength=len(classes))
    pos_idx = np.searchsorted(classes, q_labels)
    pos_idx = np.clip(pos_idx, 0, len(classes) - 1)
    known = classes[pos_idx] == q_labels
    r = np.where(known, counts[pos_idx], 0) - int(self_index)  # [Nq]
    valid = r > 0  # queries without a positive are left out, as in AccuracyCalculator
    r_max = int(r[valid].max()) if valid.any() else 0
    results: Dict[str, float] = {}

    if valid.any():
        k_short = min(max(r_max if map_at_r else 1, ks[-1] if ks[-1] <= 64 else 1), len(gallery) - int(self_index))
        _, idx = exact_knn(query, gallery, k_short, exclude_self=self_index, backend=backend,
                           chunk_size=chunk_size, device=device)  # [Nq, k]
        match = g_labels[idx] == q_labels[:, None]  # [Nq, k]
        match &= idx >= 0
        has = match.any(1)
        first = np.where(has, match.argmax(1), k_short)  # 0-based rank if within the list
        late = np.nonzero(valid & ~has)[0]
        if len(late) and ks[-1] > k_short:
            first[late] = _first_positive_rank(query, q_labels, gallery, g_labels, late, self_index,
                                               min(chunk_size, 1024), device)
        for k in ks:
            results[f"R@{k}"] = float(np.mean(first[valid] < k))
        if map_at_r:
            kk = np.arange(1, k_short + 1)[None, :]  # [1, k]
            within = kk <= r[:, None]  # [Nq, k] the first R positions
            hit = match & within
            precision = np.cumsum(hit, 1) / kk
            ap = (precision * hit).sum(1) / np.maximum(r, 1)
            results["MAP@R"] = float(np.mean(ap[valid]))
            results["RP"] = float(np.mean(hit.sum(1)[valid] / r[valid]))
    else:
        for k in ks:
            results[f"R@{k}"] = float("nan")
    if nmi:
        k = len(np.unique(q_labels))
        clusters = kmeans_labels(query, k, seed=kmeans_seed) if k > 1 else np.zeros(len(query), np.int64)
        results["NMI"] = normalized_mutual_info(q_labels, clusters)
    return results


@torch.no_grad()
def extract_embeddings(model, dataset, device, batch_size: int = 64, num_workers: int = 0):
    """Embeddings [N, D] (float32, CPU) and labels [N] of a data set of (image, label) items, through
    `model.embed(images)` when the model has it, else `model(images)["embeddings"]`."""
    from trackformer.utils import progress

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                         collate_fn=getattr(dataset, "collate_fn", None))
    embed = getattr(model, "embed", None)
    feats, labels = [], []
    for images, targets in progress(loader, desc="embedding"):
        images = images.to(device)
        out = embed(images) if callable(embed) else model(images)["embeddings"]  # [B, D]
        feats.append(out.float().cpu())
        labels.append(torch.as_tensor(targets).cpu())
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()


class RetrievalEvaluator:
    """`evaluate(model, dataset, device, output_dir)` -> R@K, MAP@R, RP, NMI on the data set's own
    labels. A data set with an `is_query` mask (In-Shop) searches its queries in its gallery; any
    other data set is searched against itself. A model with a `refine(embeddings [N, D]) -> [N, D]`
    method gets the whole split's embeddings to refine before the search (the model's own settings
    decide whether that changes anything)."""

    def __init__(self, ks=(1, 2, 4, 8), nmi: bool = True, map_at_r: bool = True, batch_size: int = 64,
                 num_workers: int = 0, backend: str = "auto", chunk_size: int = 4096):
        self.ks, self.nmi, self.map_at_r = tuple(ks), nmi, map_at_r
        self.batch_size, self.num_workers = batch_size, num_workers
        self.backend, self.chunk_size = backend, chunk_size

    def embed(self, model, dataset, device):
        emb, labels = extract_embeddings(model, dataset, device, self.batch_size, self.num_workers)
        if callable(getattr(model, "refine", None)):
            with torch.no_grad():
                emb = model.refine(torch.as_tensor(emb, device=device)).float().cpu().numpy()
        return emb, labels

    def metrics(self, emb, labels, is_query=None):
        if is_query is not None:
            q = np.asarray(is_query, dtype=bool)
            return retrieval_metrics(emb[~q], labels[~q], self.ks, query_embeddings=emb[q], query_labels=labels[q],
                                     nmi=self.nmi, map_at_r=self.map_at_r, backend=self.backend,
                                     chunk_size=self.chunk_size)
        return retrieval_metrics(emb, labels, self.ks, nmi=self.nmi, map_at_r=self.map_at_r, backend=self.backend,
                                 chunk_size=self.chunk_size)

    def evaluate(self, model, dataset, device, output_dir=None) -> Dict[str, float]:
        emb, labels = self.embed(model, dataset, device)
        return self.metrics(emb, labels, getattr(dataset, "is_query", None))
