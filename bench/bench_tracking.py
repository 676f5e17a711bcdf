"""Tracking speed of the synthetic TrackFormer model on CPU at 640 px, and the tracker's overhead.

    python bench/bench_tracking.py [--weights runs/trackformer_synthetic/best.pt] [--frames 60] [--size 640]

Frames of a generated held-out sequence are resized to `--size` (short side) and tracked online.
Printed side by side from one run: frames per second of the whole per-frame step, the time in the
network forward, and the overhead = everything but the forward (pre-processing, the tracker state
machine, NMS, result rows) as a share of the frame time (target: <= 10%); the SORT baseline on the
same detector for comparison. Without weights the untrained model is timed (the same compute).
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="trackformer_synthetic")
    p.add_argument("--weights", default=None)
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)

    import torch

    from trackformer import build_model, load_config
    from trackformer_trackq import online
    from trackformer_trackq.inputs import open_inputs
    from trackformer_trackq.sort import Sort
    from trackformer_trackq.synthetic import SyntheticConfig, generate_sequence
    from trackformer_trackq.tracker import Tracker

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = [f"model.weights={args.weights}"] if args.weights else []
    cfg = load_config(args.config, overrides)
    model = build_model(cfg, data_info={"num_classes": 1}).eval()
    with tempfile.TemporaryDirectory() as tmp:
        generate_sequence(Path(tmp) / "BENCH", SyntheticConfig(seq_length=args.frames, width=128, height=128), 123)
        [src] = open_inputs(Path(tmp) / "BENCH")
        frames = list(src.frames())  # decode once: file reading is not part of tracking
        warm = online.Timing()
        online.track_sequence(model, frames[:3], Tracker(), args.size, None, timing=warm)
        timing = online.Timing()
        rows = online.track_sequence(model, frames, Tracker(), args.size, None, timing=timing)
        t0 = time.perf_counter()
        online.sort_sequence(model, frames, Sort(), args.size, None)
        sort_time = time.perf_counter() - t0
    n = timing.frames
    h, w = online.preprocess(frames[0][1], args.size, None, "cpu").shape[-2:]
    overhead = (timing.total - timing.model) / timing.total
    print(f"input {w}x{h}, {n} frames, {torch.get_num_threads()} torch threads, {len(rows)} result rows")
    print(f"trackformer  {n / timing.total:7.2f} fps   {1000 * timing.total / n:7.1f} ms/frame")
    print(f"  forward                      {1000 * timing.model / n:7.1f} ms/frame")
    print(f"  overhead (all but forward)   {1000 * (timing.total - timing.model) / n:7.1f} ms/frame"
          f" = {100 * overhead:.1f}% of the frame time (target <= 10%)")
    print(f"sort baseline {n / sort_time:6.2f} fps   {1000 * sort_time / n:7.1f} ms/frame (detector + SORT)")
    print(f"ratio trackformer / sort frame time: {timing.total / sort_time:.2f}")
    return 0 if overhead <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
