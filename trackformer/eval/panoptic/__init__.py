"""Panoptic segmentation evaluation: PQ / SQ / RQ equal to panopticapi's `pq_compute`."""
from .matching import image_stats
from .pq import accumulate, average, pq_compute, summary

__all__ = ["accumulate", "average", "image_stats", "pq_compute", "summary"]
