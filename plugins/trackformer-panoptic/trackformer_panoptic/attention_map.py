"""DETR's `MHAttentionMap`: each query's attention over the encoder memory, as a map per head.

scores[b, q, n, y, x] = <W_q·hs[b, q] (head n), W_k·memory[b, :, y, x] (head n)> / sqrt(D / N),
−inf on padding, then ONE softmax over heads × positions together (not per head). There is no value
projection: the normalised scores are the output. The key projection runs as a 1×1 convolution on
the memory map. Parameter names (`q_linear`, `k_linear`) are the official ones.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class MHAttentionMap(nn.Module):
    def __init__(self, query_dim: int, hidden_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim {hidden_dim} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.dropout = nn.Dropout(dropout)
        self.q_linear = nn.Linear(query_dim, hidden_dim)
        self.k_linear = nn.Linear(query_dim, hidden_dim)
        for linear in (self.q_linear, self.k_linear):
            nn.init.zeros_(linear.bias)
            nn.init.xavier_uniform_(linear.weight)
        self.normalize_fact = float(hidden_dim / num_heads) ** -0.5

    def forward(self, q: Tensor, k: Tensor, mask: Tensor = None) -> Tensor:
        """q [B, Q, D] (last decoder layer), k [B, D, h, w] (memory), mask [B, h, w] (True on padding)
        -> weights [B, Q, N, h, w], summing to 1 over (N, h, w) for every query."""
        B, Q, _ = q.shape
        N, C = self.num_heads, self.hidden_dim // self.num_heads
        q = self.q_linear(q)  # [B, Q, D]
        k = F.conv2d(k, self.k_linear.weight[:, :, None, None], self.k_linear.bias)  # [B, D, h, w]
        qh = q.view(B, Q, N, C)
        kh = k.view(B, N, C, *k.shape[-2:])
        weights = torch.einsum("bqnc,bnchw->bqnhw", qh * self.normalize_fact, kh)  # [B, Q, N, h, w]
        if mask is not None:
            weights = weights.masked_fill(mask[:, None, None], float("-inf"))
        weights = F.softmax(weights.flatten(2), dim=-1).view(weights.shape)  # joint over N·h·w
        return self.dropout(weights)
