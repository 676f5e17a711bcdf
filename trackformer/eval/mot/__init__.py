"""MOTChallenge evaluation: HOTA, CLEAR and Identity with the official tool's numbers, fast.

`evaluate_mot(gt_root, results_dir, benchmark)` reads files; `evaluate_sequences` takes tracks in
memory; `format_table` prints the per-sequence table.
"""
from .evaluate import (COMBINED, evaluate_mot, evaluate_sequence, evaluate_sequences, find_sequences,
                       restrict_to_range, summarize)
from .prepare import BENCHMARKS
from .table import format_table

__all__ = ["BENCHMARKS", "COMBINED", "evaluate_mot", "evaluate_sequence", "evaluate_sequences",
           "find_sequences", "format_table", "restrict_to_range", "summarize"]
