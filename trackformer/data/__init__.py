"""Data readers and writers: COCO, MOTChallenge, retrieval folders; samplers and transforms."""
