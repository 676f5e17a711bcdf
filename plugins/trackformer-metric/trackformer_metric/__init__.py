"""Intra-batch connections for deep metric learning: message passing over the whole batch.

`trackformer_metric.embed.load_embedder(run_dir)` gives a ready `embed(images) -> [N, D]`.
"""
__version__ = "0.1.0"
