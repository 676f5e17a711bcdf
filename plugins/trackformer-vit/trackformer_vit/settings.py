"""Settings of the ViT backbone, the MAE architecture, its loss and its evaluator: plain dataclasses,
torch-free, registered by `hooks.py`.

The backbone sizes are names (`vit_tiny`, `vit_small`, `vit_base`) whose schemas differ only in the
defaults of `embed_dim`, `depth` and `num_heads` (ViT-Ti/S/B: 192/3, 384/6, 768/12 heads, 12 blocks);
every size setting stays explicit and overridable.
"""
from dataclasses import dataclass
from typing import List, Optional

from trackformer.errors import ConfigError


def _check_vit(cfg, prefix: str = ""):
    """Shared checks of the ViT encoder's numbers (`prefix` names the fields of the MAE config)."""
    for name in ("image_size", "patch_size", "embed_dim", "depth", "num_heads"):
        if getattr(cfg, name) < 1:
            raise ConfigError(prefix + name, f"must be >= 1, got {getattr(cfg, name)}")
    if cfg.embed_dim % cfg.num_heads:
        raise ConfigError(prefix + "num_heads", f"{cfg.num_heads} heads do not divide embed_dim {cfg.embed_dim}")
    if cfg.image_size % cfg.patch_size:
        raise ConfigError(prefix + "image_size", f"{cfg.image_size} is not a multiple of patch_size "
                                                 f"{cfg.patch_size}")
    if not cfg.mlp_ratio > 0:
        raise ConfigError(prefix + "mlp_ratio", f"must be > 0, got {cfg.mlp_ratio}")


@dataclass
class ViTConfig:
    image_size: int = 224  # the position table's grid is image_size / patch_size; other inputs resize it
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    # ViTDet simple feature pyramid: 0 returns the patch map `stride{p}` (embed_dim channels); > 0 the
    # levels p{log2 s} at strides p/4, p/2, p, 2p (4/8/16/32 for p = 16) with this many channels
    pyramid_channels: int = 0
    return_levels: Optional[List[str]] = None  # None: the last (coarsest) level
    weights: Optional[str] = None  # timm, torchvision or MAE state dict (.pth); None = random init
    frozen: bool = False  # freeze the transformer (the pyramid, if any, still trains)

    def __post_init__(self):
        _check_vit(self)
        if self.pyramid_channels < 0:
            raise ConfigError("pyramid_channels", f"must be >= 0, got {self.pyramid_channels}")
        if self.pyramid_channels and (self.patch_size < 4 or self.patch_size & (self.patch_size - 1)):
            raise ConfigError("pyramid_channels", f"the simple feature pyramid needs a power-of-two patch_size "
                                                  f">= 4, got {self.patch_size}")


@dataclass
class ViTTinyConfig(ViTConfig):
    embed_dim: int = 192
    num_heads: int = 3


@dataclass
class ViTSmallConfig(ViTConfig):
    embed_dim: int = 384
    num_heads: int = 6


@dataclass
class MAEConfig:
    """He et al. 2022 (facebookresearch/mae `MaskedAutoencoderViT`): the encoder is a ViT of these
    sizes (default ViT-B/16 at 224), the decoder `decoder_embed_dim` x `decoder_depth`."""
    image_size: int = 224
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mask_ratio: float = 0.75  # share of the patches removed per image
    norm_pix_loss: bool = True  # targets are each patch's pixels normalised by its mean and variance
    layer_norm_eps: float = 1e-6
    weights: Optional[str] = None  # an MAE checkpoint (the official layout) to continue from
    weights_strict: bool = True

    def __post_init__(self):
        _check_vit(self)
        for name in ("decoder_embed_dim", "decoder_depth", "decoder_num_heads"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.decoder_embed_dim % self.decoder_num_heads:
            raise ConfigError("decoder_num_heads", f"{self.decoder_num_heads} heads do not divide "
                                                   f"decoder_embed_dim {self.decoder_embed_dim}")
        keep = int((self.image_size // self.patch_size) ** 2 * (1 - self.mask_ratio))
        if not 0 < self.mask_ratio < 1 or keep < 1:
            raise ConfigError("mask_ratio", f"must remove and keep at least one patch each, got {self.mask_ratio}")


@dataclass
class MAELossConfig:
    """The MAE loss is computed by the model (it needs the pixels); this component reports it."""


@dataclass
class MAEEvalConfig:
    batch_size: int = 64
    num_images: int = 8  # columns of the reconstruction picture (0: no picture)
    seed: int = 0  # the masking noise of evaluation: the same patches every validation

    def __post_init__(self):
        if self.batch_size < 1:
            raise ConfigError("batch_size", f"must be >= 1, got {self.batch_size}")
        if self.num_images < 0:
            raise ConfigError("num_images", f"must be >= 0, got {self.num_images}")
