"""Model building blocks shared by plugins (torchvision backbones)."""
