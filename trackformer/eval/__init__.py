"""Evaluators: COCO AP, MOTChallenge HOTA/CLEAR/Identity, retrieval Recall@K/MAP@R/NMI."""
