"""The tracking evaluator of a training run: tracks every held-out sequence with the TrackFormer
tracker AND with the SORT baseline on the same detector, writes MOTChallenge result files
(`<output_dir>/tracking/{trackformer,baseline}/<seq>.txt`, optionally GIFs in `tracking/render/`) and
scores both with the core's MOT
evaluator (TrackEval metrics). Keys: `MOTA, IDF1, HOTA, IDSW` and `baseline/<key>`.
"""
from pathlib import Path
from typing import Dict, List

from . import online
from .settings import TrackerConfig, TrackingEvalConfig

KEYS = ("MOTA", "IDF1", "HOTA", "IDSW")


def frames_of(seq: Dict):
    from PIL import Image

    for i, path in enumerate(seq["frames"]):
        with Image.open(path) as im:
            yield i + 1, im.convert("RGB")


class TrackingEvaluator:
    def __init__(self, cfg: TrackingEvalConfig, embed=None):
        self.cfg = cfg
        self.embed = embed

    def evaluate(self, model, dataset, device, output_dir) -> Dict[str, float]:
        from trackformer.eval.mot import evaluate_mot
        from trackformer.utils import progress

        from .sort import Sort
        from .tracker import Tracker

        cfg = self.cfg
        out = Path(output_dir) / "tracking"
        sequences = getattr(dataset, "sequences", None)
        if not sequences:
            raise ValueError("the tracking evaluator needs a data set of MOTChallenge sequences")
        tcfg = TrackerConfig(**{**vars(cfg.tracker), "public_detections": cfg.public_detections})
        tracker = Tracker(tcfg, embed=self.embed)
        model_was_training = model.training
        names: List[str] = []
        for seq in sequences:
            name = seq["dir"].name
            names.append(name)
            public = online.read_public_detections(seq["dir"]) if cfg.public_detections else None
            bar = iter(progress(range(len(seq["frames"])), desc=f"track {name}"))
            rows = online.track_sequence(model, frames_of(seq), tracker, cfg.size, cfg.max_size, device,
                                         public_dets=public, on_frame=lambda f: next(bar, None))
            online.write_results(rows, out / "trackformer" / f"{name}.txt")
            if cfg.render:
                from .render import render

                render(frames_of(seq), rows, out / "render" / f"{name}.gif", fps=seq.get("frame_rate") or 10.0)
            if cfg.baseline:
                rows = online.sort_sequence(model, frames_of(seq), Sort(cfg.sort), cfg.size, cfg.max_size,
                                            device)
                online.write_results(rows, out / "baseline" / f"{name}.txt")
        if model_was_training:
            model.train()
        gt_root = sequences[0]["dir"].parent
        if any(Path(s["dir"]).parent != gt_root for s in sequences):
            raise ValueError("evaluated sequences must share one parent folder")
        metrics = _pick(evaluate_mot(gt_root, out / "trackformer", cfg.benchmark, names))
        if cfg.baseline:
            base = _pick(evaluate_mot(gt_root, out / "baseline", cfg.benchmark, names))
            metrics.update({f"baseline/{k}": v for k, v in base.items()})
        return metrics


def _pick(result: Dict) -> Dict[str, float]:
    """The combined (all sequences) MOTA, IDF1, HOTA, IDSW from the core evaluator's result."""
    flat = result.get("COMBINED", result) if isinstance(result, dict) else result
    return {k: float(flat[k]) for k in KEYS}


def build(settings: TrackingEvalConfig, **deps) -> TrackingEvaluator:
    """The `mot_tracking` evaluator; with `tracker.reid_appearance`, the embedding model it names."""
    from .reid import load_embedder

    embed = load_embedder(settings.reid_model, settings.reid_weights) if settings.tracker.reid_appearance else None
    return TrackingEvaluator(settings, embed=embed)
