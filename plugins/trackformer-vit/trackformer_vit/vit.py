"""The Vision Transformer encoder (Dosovitskiy et al. 2021) under timm's parameter names.

    images [B, 3, H, W] -> conv p x p, stride p -> patch tokens [B, h*w, D] (h = H // p, w = W // p)
    -> + position table resized to (h, w) -> [CLS] + patches [B, 1 + h*w, D]
    -> pre-norm blocks (x + attn(LN(x)), x + MLP(LN(x))) -> LN -> tokens [B, 1 + h*w, D]

Names are timm's (`patch_embed.proj`, `cls_token`, `pos_embed`, `blocks.N.attn.qkv`, `norm`), which
are also the MAE, DeiT and DINO files' names; `layouts.py` maps torchvision's onto them.

Position table: stored for the grid `image_size / p` and resized for other inputs as timm's
`resample_abs_pos_embed` does (class row aside, bicubic, antialiased, align_corners=False).
Padded batches: with a padding mask [B, H, W] (True on padding) each image uses the table resized to
its own grid of whole patches, padded patches are masked out of every attention as keys and zeroed
in the output, so a padded image gives the features it gives alone.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:  # [B, 3, H, W] -> [B, D, H // p, W // p]
        return self.proj(x)


class Attention(nn.Module):
    """Multi-head self-attention, q/k/v from one linear (rows q, k, v), fused kernel."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:
        # x [B, N, D]; attn_mask [B, 1, 1, N] bool, True where a key takes part
        B, N, D = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # [B, heads, N, D / heads]
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:  # [B, N, D]
        x = x + self.attn(self.norm1(x), attn_mask)
        return x + self.mlp(self.norm2(x))


def resize_pos_embed(posemb: Tensor, old_grid: Tuple[int, int], new_grid: Tuple[int, int],
                     num_prefix: int = 1) -> Tensor:
    """[1, prefix + gh*gw, D] -> [1, prefix + h*w, D]: the grid part resized bicubically with
    antialiasing (timm's `resample_abs_pos_embed`), the prefix (class) rows unchanged."""
    if tuple(old_grid) == tuple(new_grid):
        return posemb
    prefix, grid = posemb[:, :num_prefix], posemb[:, num_prefix:]
    D = grid.shape[-1]
    grid = grid.float().reshape(1, old_grid[0], old_grid[1], D).permute(0, 3, 1, 2)  # [1, D, gh, gw]
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", antialias=True, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, D).to(posemb.dtype)  # [1, h*w, D]
    return torch.cat([prefix, grid], dim=1)


class VisionTransformer(nn.Module):
    """The ViT encoder without a classification head: `forward(images, mask=None)` -> tokens
    [B, 1 + h*w, D] after the final norm and the valid-patch mask [B, h, w] (None without padding)."""

    def __init__(self, image_size: int = 224, patch_size: int = 16, embed_dim: int = 768, depth: int = 12,
                 num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True, eps: float = 1e-6,
                 in_chans: int = 3):
        super().__init__()
        self.patch_size, self.embed_dim = patch_size, embed_dim
        self.grid = (image_size // patch_size, image_size // patch_size)
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, qkv_bias, eps) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=eps)
        self.reset_parameters()

    def reset_parameters(self):
        """timm's initialisation: truncated normal 0.02 for the table and the linears, 1e-6 for the class token."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias) if m.bias is not None else None

    def position_table(self, grid: Tuple[int, int]) -> Tensor:  # -> [1, 1 + h*w, D]
        return resize_pos_embed(self.pos_embed, self.grid, grid)

    def valid_grids(self, mask: Tensor) -> Tensor:
        """Padding mask [B, H, W] -> whole patches inside each image [B, 2] (rows, columns)."""
        valid = ~mask
        rows = valid.any(dim=2).sum(dim=1)  # [B] image height in pixels
        cols = valid.any(dim=1).sum(dim=1)  # [B] image width
        return torch.stack([rows, cols], dim=1) // self.patch_size

    def forward(self, images: Tensor, mask: Optional[Tensor] = None) -> Tuple[Tensor, Optional[Tensor]]:
        x = self.patch_embed(images)  # [B, D, h, w]
        B, D, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)  # [B, h*w, D]
        grids = self.valid_grids(mask) if mask is not None else None
        if grids is None or bool((grids == torch.tensor([h, w], device=grids.device)).all()):
            grids = None
            pos = self.position_table((h, w))  # [1, 1 + h*w, D]
            x = x + pos[:, 1:]
        else:
            x = x + self.padded_positions(grids, h, w)
        x = torch.cat([(self.cls_token + self.pos_embed[:, :1]).expand(B, -1, -1), x], dim=1)  # [B, 1 + h*w, D]
        valid = attn_mask = None
        if grids is not None:
            r = torch.arange(h, device=x.device)[None, :, None]
            c = torch.arange(w, device=x.device)[None, None, :]
            valid = (r < grids[:, 0, None, None]) & (c < grids[:, 1, None, None])  # [B, h, w]
            keys = torch.cat([valid.new_ones(B, 1), valid.flatten(1)], dim=1)  # [B, 1 + h*w]; the class token always
            attn_mask = keys[:, None, None, :]  # [B, 1, 1, 1 + h*w]
        for block in self.blocks:
            x = block(x, attn_mask)
        return self.norm(x), valid

    def padded_positions(self, grids: Tensor, h: int, w: int) -> Tensor:
        """[B, h*w, D]: each image's table resized to its own grid, top-left; zeros on padding."""
        pos = self.pos_embed.new_zeros(len(grids), h, w, self.embed_dim)
        tables: Dict[Tuple[int, int], Tensor] = {}
        for i, (gh, gw) in enumerate(grids.tolist()):
            if gh and gw:
                if (gh, gw) not in tables:
                    tables[gh, gw] = self.position_table((gh, gw))[0, 1:].view(gh, gw, -1)
                pos[i, :gh, :gw] = tables[gh, gw]
        return pos.flatten(1, 2)

    def feature_map(self, images: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """The patch tokens as a map [B, D, h, w], zero on padded patches."""
        tokens, valid = self(images, mask)
        B, h, w = images.shape[0], images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size
        fmap = tokens[:, 1:].transpose(1, 2).reshape(B, self.embed_dim, h, w)
        return fmap if valid is None else fmap * valid[:, None].to(fmap.dtype)
