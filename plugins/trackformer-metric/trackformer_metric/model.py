"""The intra-batch metric learning model.

    images [B, 3, H, W] -> backbone [B, C, h, w] -> global max pool [B, C] -> linear [B, 512]
    -> L2 norm = the embedding (what retrieval uses at test time)
    -> message passing over the batch [B, 512] -> BatchNorm neck -> bias-free classifier (MPN head)
    the embedding itself -> BatchNorm neck -> bias-free classifier (backbone head)

At test time the MPN is dropped (`embed`), or, with `refine_k > 0`, used to refine each embedding
over its k-reciprocal neighbours (`refine`, which the core's retrieval evaluator calls when a model
has it).
"""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from trackformer.models.levels import last_level

from .mpn import MessagePassingNetwork, refine_with_neighbours
from .settings import IntraBatchConfig


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
                 mpn: Optional[MessagePassingNetwork] = None, pooling: str = "max", refine_k: int = 0):
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


def build(settings: IntraBatchConfig, data_info=None, **deps) -> IntraBatchModel:
    """The `intra_batch` architecture from its settings; `num_classes` from the data unless set."""
    from trackformer import build as build_component
    from trackformer.errors import ConfigError

    num_classes = settings.num_classes or (data_info or {}).get("num_classes")
    if not num_classes:
        raise ConfigError("num_classes", "unknown: set it or train on a data set that reports num_classes")
    backbone = build_component("backbones", settings.backbone)  # a relative weights path is from the working directory
    mpn = None
    if settings.mpn_layers > 0:
        mpn = MessagePassingNetwork(settings.embed_dim, settings.mpn_layers, settings.mpn_heads, settings.mpn_ffn,
                                    settings.mpn_dropout)
    return IntraBatchModel(backbone, int(num_classes), settings.embed_dim, mpn, settings.pooling, settings.refine_k)
