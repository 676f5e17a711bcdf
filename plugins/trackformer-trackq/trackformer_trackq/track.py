"""`trackformer track CONFIG model.weights=W data=SEQ_DIR|MOT_ROOT|IMAGE_DIR|VIDEO [key=value ...]`

Tracks every input sequence with the config's model and tracker settings (`evaluator.*` of a
`mot_tracking` evaluator, overridable), writes one MOTChallenge result file per sequence
(`<out>/results/<SEQ>.txt`), evaluates them with the core's MOT evaluator when every sequence has
ground truth (`<out>/metrics.json`), and renders each sequence with boxes coloured and labelled by
track id (`<out>/render/<SEQ>.gif` or `.mp4`). Import-light: torch is imported in `main`.
"""
import json
import sys


def add_arguments(parser):
    parser.add_argument("config", help="YAML config of the model (a TrackFormer run config)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted overrides; data=PATH names the input (sequence, MOT root, images, video)")
    parser.add_argument("-o", "--output", help="output folder (default: <output_dir>/track)")
    parser.add_argument("--render", choices=["gif", "mp4", "none"], default="gif", help="rendering format")
    parser.add_argument("--max-frames", type=int, default=None, help="track only the first N frames")
    parser.add_argument("--public", action="store_true",
                        help="public-detection protocol: new tracks only where det/det.txt supports them")
    parser.add_argument("--baseline", action="store_true", help="also run the SORT baseline")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")


def _split_data(overrides):
    data, rest = None, []
    for o in overrides:
        key, _, value = o.partition("=")
        if key.strip() == "data" and value and not value.lstrip().startswith("{"):
            data = value.strip()
        else:
            rest.append(o)
    return data, rest


def main(args) -> int:
    from pathlib import Path

    from trackformer import build_model, load_config
    from trackformer.errors import ConfigError, DataError
    from trackformer.utils import progress, resolve_device

    from . import online
    from .evaluator import build as build_evaluator
    from .inputs import open_inputs
    from .render import render
    from .sort import Sort
    from .tracker import Tracker

    data, overrides = _split_data(args.overrides)
    if data is None:
        raise ConfigError("data", "name the input: data=SEQ_DIR, data=MOT_ROOT, data=IMAGE_DIR or data=VIDEO")
    cfg = load_config(args.config, overrides)
    if cfg.model is None or cfg.model.name != "trackformer":
        raise ConfigError("model.name", "trackformer track needs a `trackformer` model")
    if not cfg.model.get("weights"):
        print("trackformer: warning: model.weights is not set: tracking with an untrained model", file=sys.stderr)
    sources = open_inputs(data, args.max_frames)
    evaluator_node = cfg.evaluator if cfg.evaluator is not None and cfg.evaluator.name == "mot_tracking" else {}
    ev = build_evaluator(evaluator_node or {})
    device = resolve_device(cfg.device)
    model = build_model(cfg, data_info={"num_classes": cfg.model.num_classes or 1}).to(device)
    tcfg = ev.cfg.tracker
    if args.public:
        tcfg.public_detections = True
    embed = None
    if tcfg.reid_appearance:
        from .reid import load_embedder

        embed = load_embedder(evaluator_node.get("reid_model"), evaluator_node.get("reid_weights"), device)
    tracker = Tracker(tcfg, embed=embed)
    out = Path(args.output or Path(cfg.output_dir) / "track")
    (out / "results").mkdir(parents=True, exist_ok=True)
    timing = online.Timing()
    for src in sources:
        public = None
        if tcfg.public_detections:
            if src.seq_dir is None:
                raise DataError(data, "--public needs MOTChallenge sequences with det/det.txt")
            public = online.read_public_detections(src.seq_dir)
        bar = iter(progress(range(src.num_frames), total=src.num_frames, desc=f"track {src.name}"))
        rows = online.track_sequence(model, src.frames(), tracker, ev.cfg.size, ev.cfg.max_size, device,
                                     public_dets=public, timing=timing, on_frame=lambda f: next(bar, None))
        for _ in bar:  # finish the bar when the frame count was an estimate
            pass
        online.write_results(rows, out / "results" / f"{src.name}.txt")
        if args.baseline:
            base = online.sort_sequence(model, src.frames(), Sort(ev.cfg.sort), ev.cfg.size, ev.cfg.max_size, device)
            online.write_results(base, out / "baseline" / f"{src.name}.txt")
        if args.render != "none":
            path = render(src.frames(), rows, out / "render" / f"{src.name}.{args.render}", fps=src.fps)
            print(f"rendered {path}", file=sys.stderr)
    fps = timing.frames / max(timing.total, 1e-9)
    print(f"tracked {timing.frames} frames at {fps:.1f} fps; results in {out / 'results'}", file=sys.stderr)
    metrics = {}
    if sources and all(s.has_gt for s in sources) and len({s.seq_dir.parent for s in sources}) == 1:
        from trackformer.eval.mot import evaluate_mot

        from .evaluator import _pick

        names = [s.seq_dir.name for s in sources]
        gt_root = sources[0].seq_dir.parent
        metrics = _pick(evaluate_mot(gt_root, out / "results", ev.cfg.benchmark, names))
        if args.baseline:
            base = _pick(evaluate_mot(gt_root, out / "baseline", ev.cfg.benchmark, names))
            metrics.update({f"baseline/{k}": v for k, v in base.items()})
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        width = max(len(k) for k in metrics)
        print("\n".join(f"{k:<{width}}  {v:.4f}" for k, v in sorted(metrics.items())), file=sys.stderr)
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0
