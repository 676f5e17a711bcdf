"""Masked autoencoder (He et al. 2022), the layout of facebookresearch/mae `MaskedAutoencoderViT`.

    images [N, 3, H, W] -> patches + fixed 2-D sin-cos positions [N, L, D]
    -> keep int(L * (1 - ratio)) per image by sorting noise [N, L] (smallest kept)
    -> [CLS] + kept -> ViT blocks -> LN                                   (the encoder sees 1/4 of L)
    -> decoder_embed [N, 1 + keep, Dd] -> + mask tokens up to L, un-shuffled -> + fixed sin-cos
    -> decoder blocks -> LN -> decoder_pred [N, L, p*p*3]
    loss: per-patch MSE to the (per-patch normalised) pixels, averaged over the removed patches only

Inputs: an image batch [N, 3, H, W], or a detection batch {"images", "mask"} (the `coco` / `shapes`
loaders' collate) whose labels are unused, so any detection set's images pre-train it; padded
batches are refused (the patches must all be image).

The encoder's parameters are a `VisionTransformer`'s (timm names), so an MAE state dict is also an
encoder state dict for `vit_*` backbones (the decoder keys are set aside by `layouts.py`).
"""
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from trackformer.errors import TrackformerError

from .settings import MAEConfig
from .vit import Block, VisionTransformer


def batch_images(inputs) -> Tensor:
    """[N, 3, H, W] from an image batch or an unpadded detection batch {"images", "mask"}."""
    if isinstance(inputs, dict):
        if bool(inputs["mask"].any()):
            raise TrackformerError("MAE takes batches of same-size images; this detection batch is padded "
                                   "(use one training scale and no crop)")
        return inputs["images"]
    return inputs


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """[M] positions -> [M, dim]: sin of every frequency, then cos; w_k = 10000^(-k / (dim/2))."""
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", positions.reshape(-1).astype(np.float64), omega)  # [M, dim/2]
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim: int, grid: int, cls_token: bool = True) -> Tensor:
    """The fixed table [1, (1) + grid*grid, dim] of MAE: integer positions, the first half of the
    channels encode the column, the second half the row; the class row is zeros."""
    rows, cols = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")
    table = np.concatenate([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], axis=1)  # [grid*grid, dim]
    if cls_token:
        table = np.concatenate([np.zeros((1, dim)), table], axis=0)
    return torch.from_numpy(table).float()[None]


def random_masking(x: Tensor, mask_ratio: float, noise: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """x [N, L, D] -> (kept [N, keep, D], mask [N, L] 1 = removed, ids_restore [N, L]); the patches
    with the smallest noise are kept, exactly int(L * (1 - ratio)) per image."""
    N, L, D = x.shape
    keep = int(L * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand(N, L, device=x.device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    kept = torch.gather(x, 1, ids_shuffle[:, :keep, None].expand(-1, -1, D))
    mask = torch.ones(N, L, device=x.device)
    mask[:, :keep] = 0
    return kept, torch.gather(mask, 1, ids_restore), ids_restore


def patchify(images: Tensor, p: int) -> Tensor:
    """[N, 3, H, W] -> [N, h*w, p*p*3], per patch: row in patch, column in patch, channel."""
    N, C, H, W = images.shape
    x = images.reshape(N, C, H // p, p, W // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(N, (H // p) * (W // p), p * p * C)


def unpatchify(x: Tensor, p: int, h: int, w: int) -> Tensor:
    """[N, h*w, p*p*3] -> [N, 3, h*p, w*p]."""
    N = x.shape[0]
    x = torch.einsum("nhwpqc->nchpwq", x.reshape(N, h, w, p, p, -1))
    return x.reshape(N, -1, h * p, w * p)


class MaskedAutoencoder(VisionTransformer):
    def __init__(self, image_size: int = 224, patch_size: int = 16, embed_dim: int = 768, depth: int = 12,
                 num_heads: int = 12, mlp_ratio: float = 4.0, decoder_embed_dim: int = 512, decoder_depth: int = 8,
                 decoder_num_heads: int = 16, mask_ratio: float = 0.75, norm_pix_loss: bool = True,
                 eps: float = 1e-6):
        super().__init__(image_size, patch_size, embed_dim, depth, num_heads, mlp_ratio, True, eps)
        self.mask_ratio, self.norm_pix_loss = mask_ratio, norm_pix_loss
        L = self.grid[0] * self.grid[1]
        self.pos_embed.requires_grad_(False)  # fixed sin-cos, stored
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, L + 1, decoder_embed_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, True, eps)
                                            for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=eps)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size ** 2 * 3)
        self.initialize_mae()

    def initialize_mae(self):
        """MAE's initialisation: sin-cos tables, xavier-uniform linears and patch projection (as a
        matrix), normal(0.02) tokens, LayerNorm (1, 0)."""
        with torch.no_grad():
            self.pos_embed.copy_(sincos_2d(self.embed_dim, self.grid[0]))
            self.decoder_pos_embed.copy_(sincos_2d(self.decoder_pos_embed.shape[-1], self.grid[0]))
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def encode(self, images: Tensor, mask_ratio: float, noise: Optional[Tensor] = None):
        """-> latent [N, 1 + keep, D], mask [N, L], ids_restore [N, L]."""
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # [N, L, D]
        if x.shape[1] != self.pos_embed.shape[1] - 1:
            raise TrackformerError(f"MAE takes {self.grid[0] * self.patch_size}-pixel square images, got "
                                   f"{tuple(images.shape[-2:])}")
        x, mask, ids_restore = random_masking(x + self.pos_embed[:, 1:], mask_ratio, noise)  # [N, keep, D]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore

    def decode(self, x: Tensor, ids_restore: Tensor) -> Tensor:
        """latent [N, 1 + keep, D] -> pixel predictions [N, L, p*p*3] for every patch."""
        x = self.decoder_embed(x)  # [N, 1 + keep, Dd]
        N, L, Dd = x.shape[0], ids_restore.shape[1], x.shape[2]
        tokens = torch.cat([x[:, 1:], self.mask_token.expand(N, L + 1 - x.shape[1], -1)], dim=1)  # [N, L, Dd]
        tokens = torch.gather(tokens, 1, ids_restore[:, :, None].expand(-1, -1, Dd))  # un-shuffled
        x = torch.cat([x[:, :1], tokens], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def targets(self, images: Tensor) -> Tensor:
        """[N, L, p*p*3]: the pixels of each patch, normalised per patch with `norm_pix_loss`."""
        target = patchify(images, self.patch_size)
        if self.norm_pix_loss:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        return target

    def forward(self, images, targets=None, noise: Optional[Tensor] = None,
                mask_ratio: Optional[float] = None) -> Dict[str, Tensor]:
        """-> {"loss": scalar, "pred": [N, L, p*p*3], "mask": [N, L] (1 = removed)}."""
        images = batch_images(images)  # [N, 3, H, W]
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        latent, mask, ids_restore = self.encode(images, ratio, noise)
        pred = self.decode(latent, ids_restore)
        per_patch = ((pred - self.targets(images)) ** 2).mean(dim=-1)  # [N, L]
        loss = (per_patch * mask).sum() / mask.sum()
        return {"loss": loss, "pred": pred, "mask": mask}


def build(settings: MAEConfig, **deps) -> MaskedAutoencoder:
    s = settings
    model = MaskedAutoencoder(s.image_size, s.patch_size, s.embed_dim, s.depth, s.num_heads, s.mlp_ratio,
                              s.decoder_embed_dim, s.decoder_depth, s.decoder_num_heads, s.mask_ratio,
                              s.norm_pix_loss, s.layer_norm_eps)
    if s.weights:
        from trackformer.checkpoint import load_model_weights

        load_model_weights(model, s.weights, strict=s.weights_strict)
    return model
