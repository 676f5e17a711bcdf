"""MAE's loss component and its evaluator.

The loss is computed by the model (it needs the pixels); the `mae` loss reports it with the share of
patches removed. The `mae_reconstruction` evaluator gives the mean loss of a split under fixed masking
noise (the same patches removed at every validation, so the numbers compare across epochs) and writes
a picture of its first images, three rows: the original, the patches the encoder saw (removed ones
grey), and the reconstruction (the decoder's prediction in the removed patches, the visible patches
pasted back; a per-patch normalised prediction is put back at the original patch's mean and spread).
Each evaluation writes `mae_reconstruction/NNN.png` and the latest also to `mae_reconstruction.png`.
"""
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from trackformer.atomic import atomic_write
from trackformer.data.transforms import IMAGENET_MEAN, IMAGENET_STD

from .mae import batch_images, patchify, unpatchify
from .settings import MAEEvalConfig


class MAELoss(nn.Module):
    def forward(self, outputs: Dict[str, Tensor], targets=None) -> Dict[str, Tensor]:
        return {"loss": outputs["loss"], "masked_share": outputs["mask"].float().mean()}


def reconstruct(model, images: Tensor, pred: Tensor, mask: Tensor) -> Tensor:
    """[N, 3, H, W] (normalised inputs): predictions in the removed patches, inputs elsewhere."""
    p = model.patch_size
    h, w = images.shape[-2] // p, images.shape[-1] // p
    pixels = patchify(images, p)  # [N, L, p*p*3]
    if model.norm_pix_loss:
        mean, var = pixels.mean(dim=-1, keepdim=True), pixels.var(dim=-1, keepdim=True)
        pred = pred * (var + 1e-6) ** 0.5 + mean
    m = mask[..., None]
    return unpatchify(pixels * (1 - m) + pred * m, p, h, w)


def masked_view(model, images: Tensor, mask: Tensor) -> Tensor:
    """The inputs with the removed patches at the data set's mean colour (grey after de-normalising)."""
    p = model.patch_size
    pixels = patchify(images, p)
    return unpatchify(pixels * (1 - mask[..., None]), p, images.shape[-2] // p, images.shape[-1] // p)


def to_uint8(images: Tensor) -> np.ndarray:
    """Normalised [N, 3, H, W] -> [N, H, W, 3] uint8."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    rgb = (images.float() * std + mean).clamp(0, 1)
    return (rgb.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)


def write_picture(path: Path, rows, gap: int = 2):
    """rows: lists of [N, H, W, 3] uint8 arrays -> one PNG, rows top to bottom, white gaps."""
    from PIL import Image

    n, H, W, _ = rows[0].shape
    canvas = np.full((len(rows) * (H + gap) - gap, n * (W + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c in range(n):
            canvas[r * (H + gap):r * (H + gap) + H, c * (W + gap):c * (W + gap) + W] = row[c]
    with atomic_write(path, "wb") as f:
        Image.fromarray(canvas).save(f, format="PNG")


class MAEEvaluator:
    def __init__(self, batch_size: int = 64, num_images: int = 8, seed: int = 0):
        self.batch_size, self.num_images, self.seed = batch_size, num_images, seed
        self.count = 0

    @torch.no_grad()
    def evaluate(self, model, dataset, device, output_dir: Optional[str] = None) -> Dict[str, float]:
        from trackformer.utils import progress

        loader = torch.utils.data.DataLoader(dataset, batch_size=self.batch_size, shuffle=False,
                                             collate_fn=getattr(dataset, "collate_fn", None))
        generator = torch.Generator().manual_seed(self.seed)
        total, count, masked = 0.0, 0, 0.0
        shown = []  # (images, pred, mask) of the first `num_images`
        for inputs, _ in progress(loader, desc="mae"):
            images = batch_images(inputs).to(device)  # [N, 3, H, W]
            L = model.grid[0] * model.grid[1]
            noise = torch.rand(images.shape[0], L, generator=generator).to(device)
            out = model(images, noise=noise)
            total += float(out["loss"]) * len(images)
            masked += float(out["mask"].float().mean()) * len(images)
            count += len(images)
            if sum(len(b[0]) for b in shown) < self.num_images:
                shown.append((images, out["pred"], out["mask"]))
        if output_dir is not None and self.num_images and shown:
            self.picture(model, *(torch.cat(parts)[:self.num_images] for parts in zip(*shown)), Path(output_dir))
        return {"loss": total / max(count, 1), "masked_share": masked / max(count, 1)}

    def picture(self, model, images: Tensor, pred: Tensor, mask: Tensor, folder: Path):
        rows = [to_uint8(images), to_uint8(masked_view(model, images, mask)),
                to_uint8(reconstruct(model, images, pred, mask))]
        write_picture(folder / "mae_reconstruction" / f"{self.count:03d}.png", rows)
        write_picture(folder / "mae_reconstruction.png", rows)
        self.count += 1


def build(settings: MAEEvalConfig, **deps) -> MAEEvaluator:
    return MAEEvaluator(settings.batch_size, settings.num_images, settings.seed)


def build_loss(settings, **deps) -> MAELoss:
    return MAELoss()
