"""Tracking speed on the real pedestrian sequences (../shared/data/pedestrians), in one run:

    python bench/bench_tracking_pedestrians.py [--weights runs/trackformer_pedestrians/last.pt] [--size 0]

* SORT and ByteTrack on the public detections alone (det/det.txt in memory): frames per second of
  the trackers themselves over both whole sequences (178 frames), best of `--repeats` runs
  (target >= 1,000 fps: a few small matrix operations per frame);
* TrackFormer (the `trackformer_pedestrians` model; untrained without --weights, the same compute)
  at the sequences' native size (`--size 0`; 640x480 and 768x576): frames per second of the whole
  per-frame step and the share of it spent outside the network forward (pre-processing, the
  tracker's state machine, NMS, result rows; target <= 5%). Frames are decoded beforehand: reading
  JPEGs is not tracking.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "pedestrians"
SEQUENCES = ("TUD-Campus", "PETS09-S3MF1")


def bench_trackers(repeats: int):
    from trackformer_trackq.baselines import make_tracker, public_detections, track_detections
    from trackformer_trackq.settings import ByteTrackConfig, SortConfig

    out = {}
    for name in ("sort_public", "bytetrack_public"):
        norm = "auto" if name.startswith("bytetrack") else "none"
        dets = {s: public_detections(DATA / s, None, norm) for s in SEQUENCES}
        frames = sum(len(d) for d in dets.values())
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            for s in SEQUENCES:
                track_detections(make_tracker(name, SortConfig(), ByteTrackConfig()), dets[s])
            best = min(best, time.perf_counter() - t0)
        out[name] = (frames, best)
    return out


def bench_trackformer(weights, size: int, frames_per_seq: int):
    import torch

    from trackformer import build_model, load_config
    from trackformer_trackq import online
    from trackformer_trackq.inputs import sequence_source
    from trackformer_trackq.settings import TrackerConfig
    from trackformer_trackq.tracker import Tracker

    overrides = [f"model.backbone.weights={ROOT.parent / 'shared' / 'weights' / 'mobilenet_v2-b0353104.pth'}"]
    overrides += [f"model.weights={weights}"] if weights else []
    cfg = load_config("trackformer_pedestrians", overrides)
    model = build_model(cfg, data_info={"num_classes": 1}).eval()
    tracker_cfg = TrackerConfig(**{k: v for k, v in dict(cfg.evaluator.tracker).items()})
    results = []
    for s in SEQUENCES:
        src = sequence_source(DATA / s, frames_per_seq)
        frames = list(src.frames())
        online.track_sequence(model, frames[:2], Tracker(tracker_cfg), size, None)   # warm-up
        timing = online.Timing()
        rows = online.track_sequence(model, frames, Tracker(tracker_cfg), size, None, timing=timing)
        w, h = frames[0][1].size
        results.append((s, w, h, timing, len(rows)))
    return results, torch.get_num_threads()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="a trackformer_pedestrians checkpoint (default: untrained)")
    p.add_argument("--size", type=int, default=0, help="short side of the network input; 0: native")
    p.add_argument("--frames", type=int, default=30, help="frames of each sequence for TrackFormer")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"no data at {DATA}", file=sys.stderr)
        return 2
    for name, (frames, seconds) in bench_trackers(args.repeats).items():
        print(f"{name:18s} {frames / seconds:9.0f} fps   {1e6 * seconds / frames:7.1f} us/frame  "
              f"({frames} frames, detections in memory, best of {args.repeats})")
    results, threads = bench_trackformer(args.weights, args.size, args.frames)
    worst = 0.0
    for s, w, h, t, rows in results:
        overhead = (t.total - t.model) / t.total
        worst = max(worst, overhead)
        print(f"trackformer {s:13s} {w}x{h}  {t.frames / t.total:6.2f} fps  {1000 * t.total / t.frames:7.1f} ms/frame, "
              f"forward {1000 * t.model / t.frames:7.1f} ms, outside the network {100 * overhead:4.1f}% "
              f"({rows} result rows, {threads} threads)")
    return 0 if worst <= 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
