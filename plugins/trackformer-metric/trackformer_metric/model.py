"""The intra-batch metric learning model.

    images [B, 3, H, W] -> backbone [B, C, h, w] -> global max pool [B, C] -> linear [B, 512]
    -> L2 norm = the embedding (what retrieval uses at test time)
    -> message passing over the batch [B, 512] -> BatchNorm neck -> bias-free classifier (MPN head)
    the embedding itself -> BatchNorm neck -> bias-free classifier (backbone head)

At test time the MPN is dropped (`embed`), or optionally used to refine each embedding over its
k-reciprocal neighbours (`refine`).
"""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from trackformer.models.levels import last_level

from .mpn import MessagePassingNetwork, refine_with_neighbours


class ClassifierHead(nn.Module):
    """BNNeck (BatchNorm without a learnt shift) and a bias-free linear classifier."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.neck = nn.BatchNorm1d(dim)
        self.neck.bias.requires_grad_(False)  # a shift would only move the logits' softmax-invariant part
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, x):  # [B, D] -> [B, num_classes]
        return self.classifier(self.neck(x))


class IntraBatchModel(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, embed_dim: int = 512,
                 mpn: Optional[MessagePassingNetwork] = None, pooling: str = "max", refine_k: int = 10):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.level = last_level(backbone)
        self.embedding = nn.Linear(backbone.levels[self.level].channels, embed_dim)
        self.head = ClassifierHead(embed_dim, num_classes)
        self.mpn = mpn
        self.mpn_head = ClassifierHead(embed_dim, num_classes) if mpn is not None else None
        self.refine_k = refine_k

    def features(self, images):  # [B, 3, H, W] -> [B, D], unit length
        fmap = self.backbone(images)[self.level]  # [B, C, h, w]
        pooled = fmap.amax(dim=(2, 3)) if self.pooling == "max" else fmap.mean(dim=(2, 3))  # [B, C]
        return F.normalize(self.embedding(pooled), dim=1)

    def forward(self, images, targets=None) -> Dict[str, torch.Tensor]:
        emb = self.features(images)  # [B, D]
        out = {"embeddings": emb, "logits": self.head(emb)}
        if self.mpn is not None and self.training:
            mpn_emb = self.mpn(emb)  # [B, D]: every sample has seen every other sample of the batch
            out["mpn_embeddings"] = mpn_emb
            out["mpn_logits"] = self.mpn_head(mpn_emb)
        return out

    @torch.no_grad()
    def embed(self, images) -> torch.Tensor:
        """The test-time embedding [N, D]: the backbone path alone, independent of the batch."""
        was = self.training
        self.eval()
        emb = self.features(images)
        self.train(was)
        return emb

    @torch.no_grad()
    def refine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The paper's optional test-time step: MPN over each sample's k-reciprocal neighbours."""
        if self.mpn is None or self.refine_k <= 0:
            return embeddings
        was = self.mpn.training
        self.mpn.eval()
        out = refine_with_neighbours(self.mpn, F.normalize(embeddings, dim=1), self.refine_k)
        self.mpn.train(was)
        return out


def _with_resolved_weights(node):
    """Relative backbone weights are looked up from the working directory, then from the repository
    root (configs say `../shared/weights/...`); the backbone reports a file found in neither."""
    from pathlib import Path

    from omegaconf import OmegaConf

    import trackformer

    weights = node.get("weights") if node is not None else None
    if not weights or Path(weights).expanduser().is_absolute() or Path(weights).is_file():
        return node
    in_repo = Path(trackformer.__file__).resolve().parents[1] / weights
    return OmegaConf.merge(node, {"weights": str(in_repo)}) if in_repo.is_file() else node


def build(cfg, data_info=None, **context) -> IntraBatchModel:
    from trackformer import build as build_component
    from trackformer.errors import ConfigError

    num_classes = cfg.num_classes or (data_info or {}).get("num_classes")
    if not num_classes:
        raise ConfigError("model.num_classes", "unknown: set it or train on a data set that reports num_classes")
    if cfg.pooling not in ("max", "avg"):
        raise ConfigError("model.pooling", f"must be max or avg, got {cfg.pooling!r}")
    if cfg.mpn_layers > 0 and cfg.embed_dim % cfg.mpn_heads:
        raise ConfigError("model.mpn_heads", f"{cfg.mpn_heads} heads do not divide embed_dim {cfg.embed_dim}")
    backbone = build_component("backbones", _with_resolved_weights(cfg.backbone))
    mpn = None
    if cfg.mpn_layers > 0:
        mpn = MessagePassingNetwork(cfg.embed_dim, cfg.mpn_layers, cfg.mpn_heads, cfg.mpn_ffn, cfg.mpn_dropout)
    return IntraBatchModel(backbone, int(num_classes), cfg.embed_dim, mpn, cfg.pooling, cfg.refine_k)
