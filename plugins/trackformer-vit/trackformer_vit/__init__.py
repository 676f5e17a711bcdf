"""Vision Transformer backbone and masked-autoencoder pre-training (see docs/vit-mae.md)."""
