"""trackformer plugin entry point for Deformable DETR: registration only.

Registers nothing yet: the multi-scale deformable attention (`ms_deform_attn.py`) and the deformable
transformer are library code until the multi-scale backbone contract lands and the architecture
`deformable_detr` can be built from a config.
"""
