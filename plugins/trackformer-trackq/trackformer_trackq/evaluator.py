"""The one tracking routine, shared by `trackformer track` and the `mot_tracking` evaluator of a
training run: tracks every sequence with the TrackFormer tracker and, optionally, with the SORT
baseline on the same detector, writes MOTChallenge result files (`<out>/results/<SEQ>.txt`,
`<out>/baseline/<SEQ>.txt`), optionally renders the tracks (`<out>/render/<SEQ>.gif`), and scores
both with the core's MOT evaluator (TrackEval metrics). Keys: `MOTA, IDF1, HOTA, IDSW` and
`baseline/<key>`. A training run's evaluator writes under `<output_dir>/tracking/`.

`baselines` adds trackers by detection (`baselines.py`), each into `<out>/<name>/<SEQ>.txt` and
scored as `<name>/<key>`: `sort`, `bytetrack` on the model's detections (computed once per
sequence), `sort_public`, `bytetrack_public` on det/det.txt. `per_sequence` adds `<SEQ>/<key>` and
`<SEQ>/<name>/<key>`. A source that is part of a sequence (`frame_range`) is tracked from its first
frame and scored on its frames only.
"""
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional

from . import online
from .settings import TrackerConfig, TrackingEvalConfig

KEYS = ("MOTA", "IDF1", "HOTA", "IDSW")


class TrackingEvaluator:
    def __init__(self, cfg: TrackingEvalConfig, embed=None):
        self.cfg = cfg
        self.embed = embed

    def tracker_settings(self, public: bool = False) -> TrackerConfig:
        """The tracker's settings; public detections when the evaluator, the tracker or `public` asks."""
        on = public or self.cfg.public_detections or self.cfg.tracker.public_detections
        return replace(self.cfg.tracker, public_detections=on)

    def track(self, model, sources: List, device, out, baseline: Optional[bool] = None,
              render: Optional[str] = None, public: bool = False, timing: Optional[online.Timing] = None,
              baselines: Optional[List[str]] = None, trackformer: bool = True):
        """Tracks each `inputs.Source` into `out/results` (and `out/baseline`, `out/<baseline name>`,
        `out/render/*.{render}`); `trackformer=False` runs the baselines alone (`model` may be None
        when they all use public detections)."""
        from trackformer.errors import DataError

        from .render import render as render_tracks
        from .sort import Sort
        from .tracker import Tracker

        cfg, out = self.cfg, Path(out)
        baseline = cfg.baseline if baseline is None else baseline
        baselines = list(cfg.baselines if baselines is None else baselines)
        tracker = Tracker(self.tracker_settings(public), embed=self.embed)
        was_training = model.training if model is not None else False
        for src in sources:
            self._track_baselines(model, src, device, out, baselines)
            if not trackformer:
                continue
            public_dets = None
            if tracker.cfg.public_detections:
                if src.seq_dir is None:
                    raise DataError(src.name, "public detections need a MOTChallenge sequence with det/det.txt")
                public_dets = online.read_public_detections(src.seq_dir)
            bar = iter(frame_progress(src.num_frames, f"track {src.name}"))
            rows = online.track_sequence(model, src.frames(), tracker, cfg.size, cfg.max_size, device,
                                         public_dets=public_dets, timing=timing, on_frame=lambda f: next(bar, None))
            for _ in bar:  # finish the bar when the frame count was an estimate
                pass
            online.write_results(rows, out / "results" / f"{src.name}.txt")
            if baseline:
                base = online.sort_sequence(model, src.frames(), Sort(cfg.sort), cfg.size, cfg.max_size, device)
                online.write_results(base, out / "baseline" / f"{src.name}.txt")
            if render:
                render_tracks(src.frames(), rows, out / "render" / f"{src.name}.{render}", fps=src.fps)
        if model is not None:
            model.train(was_training)

    def _track_baselines(self, model, src, device, out: Path, names: List[str]):
        from trackformer.errors import DataError

        from .baselines import make_tracker, model_detections, public_detections, track_detections

        own = None
        for name in names:
            if name.endswith("_public"):
                if src.seq_dir is None:
                    raise DataError(src.name, f"{name} needs a MOTChallenge sequence with det/det.txt")
                norm = self.cfg.bytetrack.score_norm if name.startswith("bytetrack") else "none"
                dets = public_detections(src.seq_dir, src.frame_numbers(), norm)
            else:
                if own is None:
                    bar = iter(frame_progress(src.num_frames, f"detect {src.name}"))
                    own = model_detections(model, src.frames(), self.cfg.size, self.cfg.max_size, device,
                                           on_frame=lambda f: next(bar, None))
                dets = own
            tracker = make_tracker(name, self.cfg.sort, self.cfg.bytetrack, src.fps)
            online.write_results(track_detections(tracker, dets), out / name / f"{src.name}.txt")

    @staticmethod
    def scorable(sources: List) -> bool:
        """Every source a MOTChallenge sequence with ground truth, all in one folder."""
        return bool(sources) and all(s.has_gt for s in sources) and len({s.seq_dir.parent for s in sources}) == 1

    def score(self, sources: List, out, baseline: Optional[bool] = None, baselines: Optional[List[str]] = None,
              trackformer: bool = True, per_sequence: Optional[bool] = None) -> Dict[str, float]:
        if not self.scorable(sources):
            raise ValueError("scoring needs MOTChallenge sequences with gt/gt.txt in one parent folder")
        baseline = self.cfg.baseline if baseline is None else baseline
        baselines = list(self.cfg.baselines if baselines is None else baselines)
        per_sequence = self.cfg.per_sequence if per_sequence is None else per_sequence
        methods = ([("results", "")] if trackformer else []) + ([("baseline", "baseline/")] if baseline else [])
        methods += [(name, f"{name}/") for name in baselines]
        metrics: Dict[str, float] = {}
        self.tables: Dict[str, Dict] = {}   # the full per-sequence results of each method (for tables)
        for folder, prefix in methods:
            self.tables[folder] = result = self._evaluate(sources, Path(out) / folder)
            metrics.update({prefix + k: v for k, v in _pick(result).items()})
            if per_sequence:
                for src in sources:
                    metrics.update({f"{src.name}/{prefix}{k}": v for k, v in _pick(result[src.seq_dir.name]).items()})
        return metrics

    def _evaluate(self, sources: List, results_dir: Path) -> Dict:
        from trackformer.eval.mot import evaluate_mot

        names = [s.scored_name() for s in sources]
        return evaluate_mot(sources[0].seq_dir.parent, results_dir, self.cfg.benchmark, names)

    def evaluate(self, model, dataset, device, output_dir) -> Dict[str, float]:
        from .inputs import sequence_source

        sequences = getattr(dataset, "sequences", None)
        if not sequences:
            raise ValueError("the tracking evaluator needs a data set of MOTChallenge sequences")
        sources = [sequence_source(Path(seq["dir"]), frames=seq.get("frame_range")) for seq in sequences]
        out = Path(output_dir) / "tracking"
        self.track(model, sources, device, out, render="gif" if self.cfg.render else None)
        return self.score(sources, out)


def frame_progress(total: int, desc: str):
    """Iterates range(total): on a terminal a bar with frames/s (rich), else the core's plain lines."""
    from trackformer.utils import interactive, progress

    if not interactive():
        yield from progress(range(total), total=total, desc=desc)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    speed = TextColumn("{task.fields[fps]} frames/s")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), speed, TimeRemainingColumn(),
                  transient=True) as bar:
        task = bar.add_task(desc, total=total, fps="-")
        for i in range(total):
            yield i
            bar.advance(task)
            rate = bar.tasks[0].speed
            bar.update(task, fps=f"{rate:.1f}" if rate else "-")


def _pick(result: Dict) -> Dict[str, float]:
    """The combined (all sequences) MOTA, IDF1, HOTA, IDSW from the core evaluator's result."""
    flat = result.get("COMBINED", result) if isinstance(result, dict) else result
    return {k: float(flat[k]) for k in KEYS}


def build(settings: TrackingEvalConfig, device="cpu", **deps) -> TrackingEvaluator:
    """The `mot_tracking` evaluator; with `tracker.reid_appearance`, the embedding model it names."""
    from .reid import appearance_embedder

    embed = None
    if settings.tracker.reid_appearance:
        embed = appearance_embedder(settings.reid_model, settings.reid_weights, device)
    return TrackingEvaluator(settings, embed=embed)
