"""`trackformer track CONFIG [key=value ...] --input SEQ_DIR|MOT_ROOT|IMAGE_DIR|VIDEO [--output DIR]`

Tracks every input sequence with the config's model and tracker settings (`evaluator.*` of a
`mot_tracking` evaluator, overridable as config keys) through the evaluator's tracking routine, so
that a command-line run and a training run's evaluation track alike: one MOTChallenge result file
per sequence (`<out>/results/<SEQ>.txt`), the scores of the core's MOT evaluator when every
sequence has ground truth (`<out>/metrics.json`), and each sequence rendered with boxes coloured and
labelled by track id (`<out>/render/<SEQ>.gif` or `.mp4`). The command's own options are flags;
`key=value` is only ever a config key. Import-light: torch is imported in `main`.
"""
import json
import sys

FLAGS = {"data": "--input", "input": "--input", "output": "--output"}


def add_arguments(parser):
    parser.add_argument("config", help="the model's config (a TrackFormer run): a shipped config's name or a YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    parser.add_argument("-i", "--input", metavar="PATH",
                        help="a MOTChallenge sequence or root, a folder of images or a video (required)")
    parser.add_argument("-o", "--output", metavar="DIR", help="output folder (default: <output_dir>/track)")
    parser.add_argument("--render", choices=["gif", "mp4", "none"], default="gif", help="rendering format")
    parser.add_argument("--max-frames", type=int, default=None, help="track only the first N frames")
    parser.add_argument("--public", action="store_true",
                        help="public-detection protocol: new tracks only where det/det.txt supports them")
    parser.add_argument("--baseline", action="store_true", help="also run the SORT baseline")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")


def main(args) -> int:
    from pathlib import Path

    from trackformer import build, build_model, load_config
    from trackformer.cli import reject_flag_spellings
    from trackformer.errors import ConfigError
    from trackformer.utils import resolve_device

    from . import online
    from .evaluator import build as build_evaluator
    from .inputs import open_inputs
    from .settings import TrackingEvalConfig

    reject_flag_spellings(args.overrides, FLAGS)
    if args.input is None:
        raise ConfigError("--input", "name the input: a sequence folder, a MOTChallenge root, images or a video")
    cfg = load_config(args.config, args.overrides)
    if cfg.model is None or cfg.model.name not in ("trackformer", "deformable_trackformer"):
        raise ConfigError("model.name", "trackformer track needs a `trackformer` or `deformable_trackformer` model")
    if not cfg.model.get("weights"):
        print("trackformer: warning: model.weights is not set: tracking with an untrained model", file=sys.stderr)
    sources = open_inputs(args.input, args.max_frames)
    device = resolve_device(cfg.device)
    if cfg.evaluator is not None and cfg.evaluator.name == "mot_tracking":  # its tracker settings
        ev = build("evaluators", cfg.evaluator, device=device)
    else:
        ev = build_evaluator(TrackingEvalConfig(), device=device)
    model = build_model(cfg, data_info={"num_classes": cfg.model.num_classes or 1}).to(device)
    out = Path(args.output or Path(cfg.output_dir) / "track")
    timing = online.Timing()
    ev.track(model, sources, device, out, baseline=args.baseline, public=args.public,
             render=None if args.render == "none" else args.render, timing=timing)
    fps = timing.frames / max(timing.total, 1e-9)
    print(f"tracked {timing.frames} frames at {fps:.1f} fps; results in {out / 'results'}", file=sys.stderr)
    metrics = {}
    if ev.scorable(sources):
        metrics = ev.score(sources, out, baseline=args.baseline)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        width = max(len(k) for k in metrics)
        print("\n".join(f"{k:<{width}}  {v:.4f}" for k, v in sorted(metrics.items())), file=sys.stderr)
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0
