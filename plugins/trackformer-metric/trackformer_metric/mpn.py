"""The message passing network: transformer encoder layers whose sequence axis is the batch.

During training the whole mini-batch is one fully connected graph: every embedding attends to every
other embedding of the batch (itself included), so a sample's output depends on the others (its
classes and its neighbours), which is what lets the loss shape the embedding space through
relations rather than one sample at a time. Layers are post-norm (residual, then LayerNorm), with a
ReLU feed-forward and dropout on the attention weights, after the activation and on both residual
branches, as in the reference implementation.

Input is either one set `[N, D]` (the batch) or several sets `[S, B, D]` with a padding mask
`[B, S]` (test-time refinement: one set of reciprocal neighbours per query).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class MessagePassingNetwork(nn.Module):
    """A linear projection, then `num_layers` message passing layers over the set axis."""

    def __init__(self, dim: int = 512, num_layers: int = 1, num_heads: int = 2, ffn_dim: int = 2048,
                 dropout: float = 0.1):
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        # torch's encoder layer is exactly this message passing layer: post-norm, ReLU, dropout on
        # the attention weights, after the activation and on both residual branches
        self.layers = nn.ModuleList(nn.TransformerEncoderLayer(dim, num_heads, ffn_dim, dropout)
                                    for _ in range(num_layers))

    def forward(self, x, padding_mask: Optional[torch.Tensor] = None):
        single = x.dim() == 2
        h = self.proj(x)
        if single:
            h = h[:, None]  # [N, D] -> [N, 1, D]: one graph spanning the batch
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=padding_mask)
        return h[:, 0] if single else h  # [N, D] or [S, B, D]


def reciprocal_sets(embeddings: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """For each row its k-reciprocal neighbours (j in kNN(i) and i in kNN(j)), itself first,
    padded with -1 -> [N, k + 1]. Embeddings are L2-normalized [N, D]."""
    n = len(embeddings)
    k = min(k, n - 1)
    knn = torch.empty(n, k, dtype=torch.long, device=embeddings.device)
    for s in range(0, n, chunk):
        sims = embeddings[s:s + chunk] @ embeddings.T  # [b, N]
        sims[torch.arange(sims.shape[0]), torch.arange(s, s + sims.shape[0])] = -float("inf")
        knn[s:s + chunk] = sims.topk(k, dim=1).indices
    rows = torch.arange(n, device=embeddings.device)
    # i is in the list of its neighbour j  <=>  any(knn[j] == i)
    back = (knn[knn] == rows[:, None, None]).any(-1)  # [N, k]
    sets = torch.where(back, knn, torch.full_like(knn, -1))
    # stable sort keeps the reciprocal neighbours first, in similarity order
    order = torch.sort((sets < 0).int(), dim=1, stable=True).indices
    return torch.cat([rows[:, None], sets.gather(1, order)], 1)


@torch.no_grad()
def refine_with_neighbours(mpn: MessagePassingNetwork, embeddings: torch.Tensor, k: int,
                           chunk: int = 1024) -> torch.Tensor:
    """Test-time refinement: run the MPN over each query's k-reciprocal neighbourhood (the query
    first) and keep the query's output -> [N, D], L2-normalized."""
    sets = reciprocal_sets(embeddings, k)  # [N, k + 1]
    out = torch.empty_like(embeddings)
    for s in range(0, len(sets), chunk):
        idx = sets[s:s + chunk]  # [b, S]
        pad = idx < 0
        x = embeddings[idx.clamp(min=0)].transpose(0, 1)  # [S, b, D]
        out[s:s + chunk] = mpn(x, padding_mask=pad)[0]  # the query is position 0
    return F.normalize(out, dim=1)
