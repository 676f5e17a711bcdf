"""The training objective: label-smoothed cross-entropy with temperature on two heads.

The MPN head's loss is what trains the message passing (and through it the backbone); the
backbone head's loss keeps the embedding used at test time, which never sees the MPN,
discriminative on its own. The paper weighs them 1:1.
"""
from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from .settings import IntraBatchLossConfig


class IntraBatchLoss(nn.Module):
    def __init__(self, temperature: float = 0.2, label_smoothing: float = 0.1, backbone_weight: float = 1.0,
                 mpn_weight: float = 1.0):
        super().__init__()
        self.temperature = temperature
        self.label_smoothing = label_smoothing
        self.backbone_weight = backbone_weight
        self.mpn_weight = mpn_weight

    def ce(self, logits, labels):  # [B, C], [B]
        return F.cross_entropy(logits / self.temperature, labels, label_smoothing=self.label_smoothing)

    def forward(self, outputs: Dict[str, torch.Tensor], labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        loss_ce = self.ce(outputs["logits"], labels)
        losses = {"loss_ce": loss_ce, "acc": (outputs["logits"].argmax(1) == labels).float().mean()}
        loss = self.backbone_weight * loss_ce
        if "mpn_logits" in outputs:
            loss_mpn = self.ce(outputs["mpn_logits"], labels)
            losses["loss_mpn"] = loss_mpn
            losses["acc_mpn"] = (outputs["mpn_logits"].argmax(1) == labels).float().mean()
            loss = loss + self.mpn_weight * loss_mpn
        losses["loss"] = loss
        return losses


def build(settings: IntraBatchLossConfig, **deps) -> IntraBatchLoss:
    """The `intra_batch` loss from its settings."""
    return IntraBatchLoss(settings.temperature, settings.label_smoothing, settings.backbone_weight,
                          settings.mpn_weight)
