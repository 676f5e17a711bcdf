"""trackformer entry point of the ViT plugin: registration only. Settings live in `settings.py`, each
factory (`build`) at the bottom of the module it builds, imported when first used.

Registers: backbones `vit_tiny`, `vit_small`, `vit_base` (timm and torchvision weights, ViTDet simple
feature pyramid); architecture `mae` (masked-autoencoder pre-training) with its loss `mae` and evaluator
`mae_reconstruction` (validation loss and a picture of original / masked / reconstructed images);
the run configs in `configs/`.
"""
from trackformer import hookimpl

from .settings import MAEConfig, MAEEvalConfig, MAELossConfig, ViTConfig, ViTSmallConfig, ViTTinyConfig


@hookimpl
def register_backbones(register):
    for name, schema, text in [("vit_tiny", ViTTinyConfig, "ViT-Ti (192-d, 12 blocks, 3 heads)"),
                               ("vit_small", ViTSmallConfig, "ViT-S (384-d, 12 blocks, 6 heads)"),
                               ("vit_base", ViTConfig, "ViT-B (768-d, 12 blocks, 12 heads)")]:
        register(name, "trackformer_vit.backbone:build", schema=schema,
                 help=f"{text}: patch map stride{{p}} or simple feature pyramid p2..p5; timm/torchvision/MAE weights")


@hookimpl
def register_architectures(register):
    register("mae", "trackformer_vit.mae:build", schema=MAEConfig, losses=["mae"],
             help="masked autoencoder pre-training of a ViT (He et al. 2022): 75% of patches masked")


@hookimpl
def register_losses(register):
    register("mae", "trackformer_vit.mae_eval:build_loss", schema=MAELossConfig,
             help="the MAE reconstruction loss on the masked patches (computed by the mae model)")


@hookimpl
def register_evaluators(register):
    register("mae_reconstruction", "trackformer_vit.mae_eval:build", schema=MAEEvalConfig,
             help="MAE loss with fixed masking noise, and a picture original / masked / reconstructed")


@hookimpl
def config_dirs():
    from pathlib import Path

    return [Path(__file__).parent / "configs"]
