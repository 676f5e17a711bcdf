"""DETR panoptic segmentation (Carion et al. 2020, section 4.4) as a trackformer plugin."""
__version__ = "0.1.0"
