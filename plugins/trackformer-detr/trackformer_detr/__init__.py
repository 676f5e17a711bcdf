"""DETR detection plugin for trackformer (Carion et al., End-to-End Object Detection with
Transformers, 2020). Entry point: `trackformer_detr.hooks`."""
__version__ = "0.1.0"
