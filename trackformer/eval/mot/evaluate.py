"""Evaluate tracker results against MOTChallenge ground truth: HOTA, CLEAR and Identity per sequence
and combined, with the numbers of the official evaluation (TrackEval).

    from trackformer.eval.mot import evaluate_mot
    results = evaluate_mot("MOT17/train", "runs/x/results", benchmark="MOT17")
    results["COMBINED"]["HOTA"], results["MOT17-02-FRCNN"]["IDF1"]

Values are fractions (0.785, not 78.5) except counts. The results folder holds `<SEQ>.txt` per
sequence, as the official tools expect. A sequence named `<SEQ>:FIRST-LAST` is scored on those
frames only (`restrict_to_range`): gt and results outside them are dropped, the rest renumbered from 1.
"""
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional, Tuple, Union

from ...data.frame_range import FrameRange, split_entry
from ...data.mot import Tracks, list_sequences, read_gt, read_results, read_sequence_info, results_path
from ...errors import DataError
from ...utils import progress
from .clear import clear_combine, clear_final, clear_sequence
from .hota import hota_combine, hota_final, hota_sequence
from .identity import identity_combine, identity_final, identity_sequence
from .prepare import check_benchmark, prepare_sequence

COMBINED = "COMBINED"


def restrict_to_range(gt: Tracks, results: Tracks, num_frames: int, frames: Optional[FrameRange]):
    """(gt, results, num_frames) of frames `first..last` only, renumbered from 1: what the official
    evaluation scores when given the range as a sequence of its own."""
    if frames is None:
        return gt, results, num_frames
    frames = frames.resolve(num_frames)
    return frames.restrict(gt, renumber=True), frames.restrict(results, renumber=True), len(frames)


def evaluate_sequence(gt: Tracks, results: Tracks, num_frames: int, benchmark: str = "MOT17") -> dict:
    """Raw per-metric counts of one sequence (combine them with `combine`, summarise with `summarize`)."""
    p = prepare_sequence(gt, results, num_frames, benchmark)
    return {"hota": hota_sequence(p), "clear": clear_sequence(p), "identity": identity_sequence(p),
            "count": {"GT_Dets": p.num_gt, "Dets": p.num_trk, "GT_IDs": p.num_gt_ids, "IDs": p.num_trk_ids}}


def combine(raw: Iterable[dict]) -> dict:
    raw = list(raw)
    return {"hota": hota_combine([r["hota"] for r in raw]), "clear": clear_combine([r["clear"] for r in raw]),
            "identity": identity_combine([r["identity"] for r in raw]),
            "count": {k: sum(r["count"][k] for r in raw) for k in ("GT_Dets", "Dets", "GT_IDs", "IDs")}}


def summarize(raw: dict) -> Dict[str, float]:
    """One flat dict: HOTA, DetA, AssA, LocA, ..., MOTA, MOTP, IDSW, ..., IDF1, IDP, IDR, counts."""
    return {**hota_final(raw["hota"]), **clear_final(raw["clear"]), **identity_final(raw["identity"]),
            **raw["count"]}


def evaluate_sequences(data: Dict[str, Union[Tuple[Tracks, Tracks, int], Callable]],
                       benchmark: str = "MOT17") -> dict:
    """In-memory entry point (the tracking plugin's evaluator): {name: (gt, results, num_frames)} ->
    {name: metrics, ..., "COMBINED": metrics}. A value may also be a callable returning the tuple,
    so that only one sequence is held in memory at a time."""
    check_benchmark(benchmark)
    raw = {}
    for name in progress(list(data), desc="evaluating sequences"):
        item = data[name]
        gt, res, num_frames = item() if callable(item) else item
        raw[name] = evaluate_sequence(gt, res, num_frames, benchmark)
    out = {name: summarize(r) for name, r in raw.items()}
    out[COMBINED] = summarize(combine(raw.values()))
    return out


def find_sequences(gt_root, sequences: Optional[Iterable[str]] = None) -> Dict[str, Path]:
    """Sequence folders with gt/gt.txt under `gt_root` (or `gt_root` itself if it is one); names may
    carry a `:FIRST-LAST` frame range, which is dropped here (see `evaluate_mot`)."""
    if sequences is not None:
        sequences = [split_entry(s)[0] for s in sequences]
    gt_root = Path(gt_root)
    if (gt_root / "gt" / "gt.txt").is_file():
        found = {gt_root.name: gt_root}
    else:
        found = {p.name: p for p in list_sequences(gt_root) if (p / "gt" / "gt.txt").is_file()}
    if sequences is None:
        if not found:
            raise DataError(gt_root, "no sequence folders with gt/gt.txt")
        return found
    chosen = {}
    for name in sequences:
        if name not in found:
            raise DataError(gt_root, f"no sequence {name!r} with gt/gt.txt (found: {', '.join(found) or 'none'})")
        chosen[name] = found[name]
    return chosen


def _loader(seq_dir: Path, num_frames: int, res_path: Path, frames: Optional[FrameRange]) -> Callable:
    def load():
        res = read_results(res_path, num_frames) if res_path.is_file() else Tracks.empty(res_path)
        return restrict_to_range(read_gt(seq_dir / "gt" / "gt.txt", num_frames), res, num_frames, frames)
    return load


def evaluate_mot(gt_root, results_dir, benchmark: str = "MOT17", sequences: Optional[Iterable[str]] = None,
                 missing_ok: bool = False) -> Dict[str, Dict[str, float]]:
    """Evaluate `<results_dir>/<SEQ>.txt` against `<gt_root>/<SEQ>/gt/gt.txt` for every sequence
    (or the ones named, each optionally `<SEQ>:FIRST-LAST` to score only those frames). A missing
    results file is an error, or with `missing_ok` an empty tracking."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise DataError(results_dir, "results folder not found")
    ranges = dict(split_entry(s, "sequences") for s in sequences) if sequences is not None else {}
    data = {}
    for name, seq_dir in find_sequences(gt_root, sequences).items():
        num_frames = read_sequence_info(seq_dir).num_frames
        if ranges.get(name) is not None:
            ranges[name].resolve(num_frames, f"sequences: {name}")   # fail before any work is done
        res_path = results_path(results_dir, name)
        if not (res_path.is_file() or missing_ok):   # fail before any work is done
            raise DataError(res_path, f"no results for sequence {name} (to score a missing file as an "
                                      f"empty tracking: --missing-ok / missing_ok=True)")
        data[name] = _loader(seq_dir, num_frames, res_path, ranges.get(name))
    return evaluate_sequences(data, benchmark)
