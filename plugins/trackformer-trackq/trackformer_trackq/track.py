"""`trackformer track [CONFIG] [key=value ...] --input|--source PATH [--frames FIRST-LAST]
[--tracker trackformer|sort|bytetrack] [--detections model|public] [--output DIR]`

Tracks every input sequence through the evaluator's tracking routine, so that a command-line run and
a training run's evaluation track alike: one MOTChallenge result file per sequence, the scores of the
core's MOT evaluator when every sequence has ground truth (`<out>/metrics.json`, and the table on
stderr), each sequence rendered with boxes coloured and labelled by track id and short trails
(`<out>/render/<SEQ>.gif`, or `.mp4`), and with ground truth the per-identity timeline
(`<out>/timeline/<SEQ>.png`). `--source` is `--input` for a user's own recording: an MP4 by default.

The tracker is TrackFormer (a config with a `trackformer` model), or SORT / ByteTrack on the model's
own detections (`--detections model`, with a config) or on a sequence's `det/det.txt` alone
(`--detections public`, no config needed). The command's own options are flags; `key=value` is only
ever a config key. Import-light: torch is imported in `main`.
"""
import json
import sys
from pathlib import Path

FLAGS = {"data": "--input", "input": "--input", "output": "--output", "source": "--source",
         "frames": "--frames", "tracker": "--tracker"}
TRAIL = 12  # frames of trail drawn behind each track


def add_arguments(parser):
    parser.add_argument("config", nargs="?", default=None,
                        help="the model's config (a TrackFormer run): a shipped config's name or a YAML file; "
                             "not needed for --tracker sort|bytetrack on public detections")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("-i", "--input", metavar="PATH",
                     help="a MOTChallenge sequence (SEQ_DIR or SEQ_DIR:FIRST-LAST) or root, a folder of images or a video")
    src.add_argument("--source", metavar="VIDEO_OR_FOLDER", help="as --input, rendered to MP4 by default")
    parser.add_argument("-o", "--output", metavar="DIR", help="output folder (default: <output_dir>/track)")
    parser.add_argument("--frames", metavar="FIRST-LAST", help="track and score only these frames of each sequence")
    parser.add_argument("--tracker", choices=["trackformer", "sort", "bytetrack"], default="trackformer",
                        help="TrackFormer (track queries), or SORT / ByteTrack on detections")
    parser.add_argument("--detections", choices=["model", "public"], default=None,
                        help="what SORT / ByteTrack track: the model's detections or det/det.txt "
                             "(default: model with a config, else public)")
    parser.add_argument("--render", choices=["gif", "mp4", "none"], default=None,
                        help="rendering format (default: gif; mp4 with --source)")
    parser.add_argument("--max-frames", type=int, default=None, help="track only the first N frames")
    parser.add_argument("--public", action="store_true",
                        help="TrackFormer's public-detection protocol: new tracks only where det/det.txt supports them")
    parser.add_argument("--baseline", action="store_true", help="also run the SORT baseline on the model's detections")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")


def _plan(args):
    """(method folder name, needs a model) from the flags; a one-line error for impossible mixes."""
    from trackformer.errors import ConfigError

    detections = args.detections or ("model" if args.config else "public")
    if args.tracker == "trackformer":
        if args.detections == "public":
            raise ConfigError("--detections", "TrackFormer tracks its own detections; for the public protocol use --public")
        if not args.config:
            raise ConfigError("config", "name the model's config (e.g. trackformer_pedestrians), or track "
                                        "det/det.txt alone with --tracker sort|bytetrack")
        return "results", True
    if detections == "model" and not args.config:
        raise ConfigError("--detections", "the model's detections need its config")
    return (f"{args.tracker}_public" if detections == "public" else args.tracker), detections == "model"


def _load(args, needs_model: bool):
    """(config or None, evaluator, model or None, device)."""
    from trackformer import build, build_model, load_config
    from trackformer.errors import ConfigError
    from trackformer.utils import resolve_device

    from .evaluator import build as build_evaluator
    from .settings import TrackingEvalConfig

    if not args.config:
        return None, build_evaluator(TrackingEvalConfig(baseline=False)), None, "cpu"
    cfg = load_config(args.config, args.overrides)
    if cfg.model is None or cfg.model.name not in ("trackformer", "deformable_trackformer"):
        raise ConfigError("model.name", "trackformer track needs a `trackformer` or `deformable_trackformer` model")
    device = resolve_device(cfg.device)
    if cfg.evaluator is not None and cfg.evaluator.name == "mot_tracking":  # its tracker settings
        ev = build("evaluators", cfg.evaluator, device=device)
    else:
        ev = build_evaluator(TrackingEvalConfig(), device=device)
    model = None
    if needs_model:
        if not cfg.model.get("weights"):
            print("trackformer: warning: model.weights is not set: tracking with an untrained model", file=sys.stderr)
        model = build_model(cfg, data_info={"num_classes": cfg.model.num_classes or 1}).to(device)
    return cfg, ev, model, device


def main(args) -> int:
    from dataclasses import replace

    from trackformer.cli import reject_flag_spellings
    from trackformer.data.frame_range import parse_frame_range
    from trackformer.errors import ConfigError

    from . import online
    from .inputs import open_inputs

    if args.config and "=" in args.config:   # `track key=value --tracker sort`: no config named
        args.overrides, args.config = [args.config] + list(args.overrides), None
    reject_flag_spellings(args.overrides, FLAGS)
    path = args.source or args.input
    if path is None:
        raise ConfigError("--input", "name the input: a sequence folder, a MOTChallenge root, images or a video")
    method, needs_model = _plan(args)
    cfg, ev, model, device = _load(args, needs_model)
    frames = parse_frame_range(args.frames, "--frames") if args.frames else None
    sources = open_inputs(path, args.max_frames, frames)
    out = Path(args.output or Path(cfg.output_dir if cfg is not None else "runs/track") / "track")
    ev.cfg = replace(ev.cfg, benchmark=_benchmark(sources, ev.cfg.benchmark))
    timing = online.Timing()
    if method == "results":
        ev.track(model, sources, device, out, baseline=args.baseline, public=args.public, timing=timing, baselines=[])
        fps = timing.frames / max(timing.total, 1e-9)
        print(f"tracked {timing.frames} frames at {fps:.1f} fps; results in {out / 'results'}", file=sys.stderr)
    else:
        ev.track(model, sources, device, out, baseline=False, baselines=[method], trackformer=False)
        print(f"tracked with {method}; results in {out / method}", file=sys.stderr)
    render = args.render or ("mp4" if args.source else "gif")
    _show(sources, out, method, None if render == "none" else render)
    metrics = {}
    if ev.scorable(sources):
        trackformer = method == "results"
        metrics = ev.score(sources, out, baseline=args.baseline and trackformer,
                           baselines=[] if trackformer else [method], trackformer=trackformer)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        from trackformer.eval.mot import format_table

        for folder, table in ev.tables.items():
            print(f"{folder}:\n{format_table(table)}", file=sys.stderr)
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


def _benchmark(sources, configured: str) -> str:
    """MOT15 conventions for ground truth without a class column (MOT15 / PETS09 files), which the
    MOT16/17/20 preprocessing cannot read; otherwise the configured benchmark."""
    from trackformer.data.mot import read_gt

    for s in sources:
        if s.has_gt and configured != "MOT15" and (read_gt(s.seq_dir / "gt" / "gt.txt").cls == -1).all():
            print(f"trackformer: note: {s.name}'s ground truth has no class column: scored as MOT15", file=sys.stderr)
            return "MOT15"
    return configured


def _show(sources, out: Path, method: str, render):
    """The rendering (boxes, ids, trails) of each source's tracks and, with gt, its timeline PNG."""
    from trackformer.data.mot import read_gt, read_results

    from .render import render as render_tracks
    from .timeline import draw_timeline

    for src in sources:
        res = read_results(out / method / f"{src.name}.txt")
        rows = [(int(f), int(i), *b, s) for f, i, b, s in zip(res.frame, res.id, res.boxes, res.score)]
        if render:
            path = render_tracks(src.frames(), rows, out / "render" / f"{src.name}.{render}", fps=src.fps, trail=TRAIL)
            print(f"rendered {path}", file=sys.stderr)
        if src.has_gt:
            gt = read_gt(src.seq_dir / "gt" / "gt.txt")
            title = f"{src.name} ({method}): ground-truth identities over frames"
            path = draw_timeline(gt, rows, list(src.frame_numbers()), out / "timeline" / f"{src.name}.png", title)
            print(f"timeline {path}", file=sys.stderr)
