"""Multi-scale deformable attention, forward + backward, ours against Hugging Face transformers' pure
PyTorch `MultiScaleDeformableAttention` (the official reference algorithm: `grid_sample` per level,
stack, weight, sum).

    PYTHONPATH=plugins/trackformer-deformable .venv/bin/python bench/bench_deformable_attention.py --threads 2 --repeats 3

Shapes of the released TrackFormer model (d 288: 8 heads x 36, 4 points) for one 640x1152 frame pair:
  encoder  both frames (batch 2), queries = the frame's 15,300 tokens over its 4 levels (strides 8-64)
  decoder  550 queries (500 object + 50 track) over the pair's 8 levels (30,600 tokens)
Locations are realistic: each query's reference point (its pixel centre in the encoder, uniform in
the decoder) plus offsets of a few pixels per level (some fall off the map), weights softmaxed.

Every measurement runs in a fresh subprocess (`--worker`), so the peak memory is that process's
`ru_maxrss` above what it held once the inputs existed (after a tiny warm-up call has loaded the
kernels' code); the two implementations alternate, `--repeats` rounds, so load from other processes
hits both. Printed: wall and CPU seconds (all threads; less sensitive to other processes on a shared
machine) per forward+backward (median of `--iters` after one warm-up) and peak memory per
implementation, and the ratios ours / HF as the range over rounds (goal <= 0.5x time and memory,
bar <= 0.8x time).
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

FRAME = [(80, 144), (40, 72), (20, 36), (10, 18)]  # 640x1152 at strides 8, 16, 32, 64
HEADS, HEAD_DIM, POINTS = 8, 36, 4


def make_inputs(case, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    if case == "encoder":
        shapes, N = FRAME, 2
        ref = torch.cat([torch.stack(torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w,
                                                    indexing="ij")[::-1], -1).view(-1, 2) for h, w in shapes])
        ref = ref.expand(N, -1, -1)  # [N, Lq, 2] (x, y)
    else:
        shapes, N = FRAME * 2, 1
        ref = torch.rand(N, 550, 2, generator=g)
    L, Lq = len(shapes), ref.shape[1]
    S = sum(h * w for h, w in shapes)
    size = torch.tensor([[w, h] for h, w in shapes], dtype=torch.float32)  # [L, 2]
    offsets = torch.randn(N, Lq, HEADS, L, POINTS, 2, generator=g) * 2.0 / size[:, None]  # ~2 px
    loc = ref[:, :, None, None, None, :] + offsets  # [N, Lq, M, L, P, 2]
    attn = torch.randn(N, Lq, HEADS, L * POINTS, generator=g).softmax(-1).view(N, Lq, HEADS, L, POINTS)
    value = torch.randn(N, S, HEADS, HEAD_DIM, generator=g)
    return shapes, value, loc, attn


def implementation(impl):
    """fn(shapes, value, sampling_locations, attention_weights) -> [N, Lq, M * D]."""
    import torch

    if impl == "ours":
        from trackformer_deformable.ms_deform_attn import ms_deform_attn

        return lambda shapes, v, l, a: ms_deform_attn(v, shapes, None, l, a)
    from transformers.models.deformable_detr.modeling_deformable_detr import MultiScaleDeformableAttention

    hf = MultiScaleDeformableAttention()

    def fn(shapes, v, l, a):
        shapes_t = torch.tensor(shapes)
        start = torch.cat([shapes_t.new_zeros(1), shapes_t.prod(1).cumsum(0)[:-1]])
        return hf(v, shapes_t, shapes, start, l, a, 64)
    return fn


def worker(args):
    import torch

    torch.set_num_threads(args.threads)
    shapes, value, loc, attn = make_inputs(args.case)
    fn = implementation(args.impl)
    tiny = [(4, 6), (2, 3)]  # loads the kernels' code first, so the peak below is the call's own memory
    fn(tiny, torch.randn(1, 30, HEADS, HEAD_DIM, requires_grad=True), torch.rand(1, 5, HEADS, 2, POINTS, 2),
       torch.rand(1, 5, HEADS, 2, POINTS)).sum().backward()
    inputs = [t.requires_grad_() for t in (value, loc, attn)]
    grad = torch.randn(value.shape[0], loc.shape[1], HEADS * HEAD_DIM)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, cpu = [], []
    for i in range(args.iters + 1):
        for t in inputs:
            t.grad = None
        start_t, start_cpu = time.perf_counter(), time.process_time()
        fn(shapes, *inputs).backward(grad)
        if i:
            times.append(time.perf_counter() - start_t)
            cpu.append(time.process_time() - start_cpu)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    print(json.dumps({"seconds": statistics.median(times), "cpu_seconds": statistics.median(cpu),
                      "peak_mb": peak / 1024}))


def run_worker(impl, case, args):
    cmd = [sys.executable, __file__, "--worker", "--impl", impl, "--case", case, "--threads", str(args.threads),
           "--iters", str(args.iters)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="rounds of (HF, ours) subprocess pairs")
    p.add_argument("--iters", type=int, default=2, help="timed forward+backward per subprocess, after a warm-up")
    p.add_argument("--cases", nargs="+", default=["encoder", "decoder"], choices=["encoder", "decoder"])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--impl", choices=["ours", "hf"], help=argparse.SUPPRESS)
    p.add_argument("--case", choices=["encoder", "decoder"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    print(f"threads {args.threads}, {args.repeats} rounds x {args.iters} timed iterations (+1 warm-up)")
    for case in args.cases:
        rounds = []
        for _ in range(args.repeats):
            hf, ours = run_worker("hf", case, args), run_worker("ours", case, args)
            rounds.append((hf, ours))
            print(f"  {case:8s} HF {hf['seconds']:.3f} s (CPU {hf['cpu_seconds']:.3f} s) {hf['peak_mb']:.0f} MB | "
                  f"ours {ours['seconds']:.3f} s (CPU {ours['cpu_seconds']:.3f} s) {ours['peak_mb']:.0f} MB", flush=True)

        def ratios(key):
            r = [o[key] / max(h[key], 1e-9) for h, o in rounds]
            return f"{min(r):.2f}-{max(r):.2f}x (median {statistics.median(r):.2f})"
        print(f"{case:8s} ours/HF: time {ratios('seconds')}, CPU time {ratios('cpu_seconds')}, "
              f"peak memory {ratios('peak_mb')}")


if __name__ == "__main__":
    main()
