"""Deformable DETR plugin for trackformer (Zhu et al., Deformable DETR: Deformable Transformers for
End-to-End Object Detection, 2021). Entry point: `trackformer_deformable.hooks`."""
__version__ = "0.1.0"
