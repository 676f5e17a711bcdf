"""ViT state dicts in the timm and torchvision layouts, both loaded strictly into `VisionTransformer`.

The module uses timm's names (also MAE's, DeiT's and DINO's). torchvision's are a one-to-one renaming,
q/k/v rows in the same order, nothing reshuffled:

    torchvision                                           timm / this module
    class_token                                           cls_token
    conv_proj.{weight,bias}                               patch_embed.proj.*
    encoder.pos_embedding                                 pos_embed
    encoder.layers.encoder_layer_{i}.ln_1 / ln_2          blocks.{i}.norm1 / norm2
    ….self_attention.in_proj_{weight,bias}                blocks.{i}.attn.qkv.*
    ….self_attention.out_proj.*                           blocks.{i}.attn.proj.*
    ….mlp.0 / mlp.3                                       blocks.{i}.mlp.fc1 / fc2
    encoder.ln                                            norm

Classification heads (`head.*`, `heads.*`) and MAE's decoder (`mask_token`, `decoder_*`) are set aside;
every other key must match the module exactly. A key prefix (`module.`, `backbone.vit.` of this
project's checkpoints) is found from the patch projection and removed. A position table for another
grid is resized to the module's (`resize_pos_embed`), as timm does when it loads a checkpoint.
"""
import math
import re
from pathlib import Path
from typing import Dict, Union

import torch
from torch import Tensor

from trackformer.checkpoint import state_dict_mismatch
from trackformer.errors import DataError

from .vit import VisionTransformer, resize_pos_embed

_TORCHVISION = [  # (pattern, replacement), applied to the first match
    (r"^class_token$", "cls_token"),
    (r"^conv_proj\.", "patch_embed.proj."),
    (r"^encoder\.pos_embedding$", "pos_embed"),
    (r"^encoder\.ln\.", "norm."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.ln_1\.", r"blocks.\1.norm1."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.ln_2\.", r"blocks.\1.norm2."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.in_proj_(weight|bias)$", r"blocks.\1.attn.qkv.\2"),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.out_proj\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.mlp\.0\.", r"blocks.\1.mlp.fc1."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.mlp\.3\.", r"blocks.\1.mlp.fc2."),
]
_SET_ASIDE = ("head.", "heads.", "fc_norm.", "mask_token", "decoder_")
_ANCHORS = {"patch_embed.proj.weight": "timm", "conv_proj.weight": "torchvision"}


def torchvision_to_timm_key(key: str) -> str:
    for pattern, replacement in _TORCHVISION:
        new, n = re.subn(pattern, replacement, key)
        if n:
            return new
    return key


def timm_to_torchvision(state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """The inverse renaming (a timm-layout encoder -> torchvision `VisionTransformer` keys, head aside)."""
    inverse = {}
    for key, value in state.items():
        new = key
        for pattern, replacement in [(r"^cls_token$", "class_token"), (r"^patch_embed\.proj\.", "conv_proj."),
                                     (r"^pos_embed$", "encoder.pos_embedding"), (r"^norm\.", "encoder.ln.")]:
            new = re.sub(pattern, replacement, new)
        m = re.match(r"^blocks\.(\d+)\.(.*)$", key)
        if m:
            rest = {"norm1.": "ln_1.", "norm2.": "ln_2.", "attn.qkv.": "self_attention.in_proj_",
                    "attn.proj.": "self_attention.out_proj.", "mlp.fc1.": "mlp.0.", "mlp.fc2.": "mlp.3."}
            tail = m.group(2)
            for old, rep in rest.items():
                if tail.startswith(old):
                    tail = rep + tail[len(old):]
                    break
            new = f"encoder.layers.encoder_layer_{m.group(1)}.{tail}"
        inverse[new] = value
    return inverse


def detect_layout(state: Dict[str, Tensor], source) -> (str, str):
    """(layout, prefix) of a ViT state dict, found from its patch projection's key."""
    for key in state:
        for anchor, layout in _ANCHORS.items():
            if key.endswith(anchor) and (key == anchor or key[:-len(anchor)].endswith(".")):
                return layout, key[:-len(anchor)]
    raise DataError(source, "not a ViT state dict: no patch_embed.proj.weight (timm/MAE) or conv_proj.weight "
                            "(torchvision) key")


def to_module_layout(state: Dict[str, Tensor], vit: VisionTransformer, source="state dict") -> Dict[str, Tensor]:
    """A timm or torchvision state dict renamed to `vit`'s keys, heads and MAE decoder set aside, the
    position table resized to `vit`'s grid; a one-line DataError when the rest does not fit exactly."""
    layout, prefix = detect_layout(state, source)
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if layout == "torchvision":
        state = {torchvision_to_timm_key(k): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(_SET_ASIDE)}
    own = vit.state_dict()
    if "pos_embed" in state and state["pos_embed"].shape[-1] == own["pos_embed"].shape[-1]:
        n = state["pos_embed"].shape[1] - 1
        side = math.isqrt(n)
        if side * side == n and n != own["pos_embed"].shape[1] - 1:
            state["pos_embed"] = resize_pos_embed(state["pos_embed"], (side, side), vit.grid)
    mismatch = state_dict_mismatch(own, state)
    if mismatch:
        raise DataError(source, f"not {layout} ViT weights for this model: {mismatch}")
    return state


def load_vit_weights(vit: VisionTransformer, weights: Union[str, Path, Dict[str, Tensor]]):
    """Load a file (a state dict, or a checkpoint with a `model`/`state_dict` entry) or a state dict."""
    if isinstance(weights, dict):
        state, source = weights, "state dict"
    else:
        from trackformer.models.backbones import _read_state_dict

        state, source = _read_state_dict(str(weights)), weights
    with torch.no_grad():
        vit.load_state_dict(to_module_layout(state, vit, source), strict=True)
