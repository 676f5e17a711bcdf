"""Whole-image inference on CPU: Deformable DETR + box refinement (R50, d 256, 300 queries, 91 classes) at
800x1066, ours against Hugging Face transformers' `DeformableDetrForObjectDetection` with the same weights;
then the frame time of the released TrackFormer layout (`trackformer_mot17_deformable`, both quirks) at 800 px.

    PYTHONPATH=... .venv/bin/python bench/bench_deformable_inference.py --threads 2 --repeats 3

Same weights: HF's model is built offline (its ResNet-50, frozen BatchNorm) and every parameter and BatchNorm
statistic re-randomised; ours (torchvision-layout ResNet-50 + our transformer) takes them renamed, and the
script first checks that both give the same logits and boxes on the benchmark image (max difference printed).
Timing: the two alternate, `--repeats` rounds of `--iters` forwards each (median per round, after one
warm-up forward each); printed per round, with the ratio ours / HF as the range over rounds (goal <= 0.6x,
bar <= 0.9x). The TrackFormer part times `track_step` on a frame pair with 50 track queries (two encoder
runs, 8-level decoder, 550 queries), median of `--iters` per round.
"""
import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "trackformer-deformable" / "tests"))
from test_deformable_detr_reference_outputs import from_hf  # noqa: E402  the official -> HF key renames


def hf_model():
    from transformers import DeformableDetrConfig, DeformableDetrForObjectDetection, ResNetConfig

    backbone = ResNetConfig(out_features=["stage2", "stage3", "stage4"])  # ResNet-50
    cfg = DeformableDetrConfig(backbone_config=backbone, backbone=None, use_pretrained_backbone=False,
                               use_timm_backbone=False, with_box_refine=True, two_stage=False, num_labels=91,
                               num_queries=300, dropout=0.0, auxiliary_loss=False)
    model = DeformableDetrForObjectDetection(cfg).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            norm = name.endswith("norm.weight") or "layer_norm.weight" in name or "normalization.weight" in name
            p.copy_(torch.randn(p.shape, generator=g) * (0.02 if p.dim() > 1 else 0.05) + (1.0 if norm else 0.0))
        for name, b in model.named_buffers():
            if b.is_floating_point():  # frozen BatchNorm statistics
                var = "var" in name
                b.copy_(torch.rand(b.shape, generator=g) + 0.5 if var else torch.randn(b.shape, generator=g) * 0.1)
    return model


def backbone_key(ours: str) -> str:
    """Our `backbone.0.body.*` (torchvision ResNet) key -> HF's DeformableDetr backbone key."""
    key = ours[len("backbone.0.body."):]
    prefix = "model.backbone.model."
    m = re.match(r"^(conv1|bn1)\.(.+)$", key)
    if m:
        return prefix + f"embedder.embedder.{'convolution' if m[1] == 'conv1' else 'normalization'}.{m[2]}"
    m = re.match(r"^layer(\d)\.(\d+)\.(conv|bn)(\d)\.(.+)$", key)
    if m:
        part = "convolution" if m[3] == "conv" else "normalization"
        return prefix + f"encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.layer.{int(m[4]) - 1}.{part}.{m[5]}"
    m = re.match(r"^layer(\d)\.(\d+)\.downsample\.(0|1)\.(.+)$", key)
    part = "convolution" if m[3] == "0" else "normalization"
    return prefix + f"encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.shortcut.{part}.{m[4]}"


def our_model(hf):
    import trackformer

    model = trackformer.build_model(trackformer.load_config("deformable_detr_r50_refine_coco",
                                                           ["model.dropout=0.0"])).eval()
    hf_state = hf.state_dict()
    state = {k: (hf_state[backbone_key(k)] if k.startswith("backbone.") else from_hf(k, hf_state))
             for k in model.state_dict()}
    model.load_state_dict(state, strict=True)
    return model


def timed(fn, iters):
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def detector_rounds(args):
    hf = hf_model()
    ours = our_model(hf)
    g = torch.Generator().manual_seed(1)
    image = torch.randn(1, 3, args.height, args.width, generator=g)
    mask = torch.zeros(1, args.height, args.width, dtype=torch.bool)
    with torch.inference_mode():
        expected = hf(pixel_values=image, pixel_mask=(~mask).long())
        got = ours((image, mask))
    print(f"same weights: max |logits diff| {(got['pred_logits'] - expected.logits).abs().max():.2e}, "
          f"max |boxes diff| {(got['pred_boxes'] - expected.pred_boxes).abs().max():.2e}")
    runs = {"ours": lambda: ours((image, mask)), "hf": lambda: hf(pixel_values=image, pixel_mask=(~mask).long())}
    ratios = []
    with torch.inference_mode():
        for fn in runs.values():
            fn()  # warm-up
        for r in range(args.repeats):
            t = {name: timed(fn, args.iters) for name, fn in runs.items()}
            ratios.append(t["ours"] / t["hf"])
            print(f"round {r + 1}: ours {t['ours']:.2f} s, HF {t['hf']:.2f} s, ratio {ratios[-1]:.2f}x", flush=True)
    print(f"Deformable DETR + refine, {args.height}x{args.width}, {args.threads} threads: ours / HF "
          f"{min(ratios):.2f}-{max(ratios):.2f}x (goal <= 0.6x, bar <= 0.9x)")


def trackformer_rounds(args):
    import trackformer

    model = trackformer.build_model(trackformer.load_config("trackformer_mot17_deformable")).eval()
    g = torch.Generator().manual_seed(2)
    frames = [torch.randn(3, args.height, args.width, generator=g) for _ in range(2)]
    queries = torch.cat([torch.randn(50, 288, generator=g), torch.rand(50, 2, generator=g) * 0.6 + 0.2,
                         torch.full((50, 2), 0.05)], 1)  # [50, d + 4]: embedding, cxcywh box

    def pair():
        model.reset_tracking()
        model.track_step(frames[0], None)
        start = time.perf_counter()
        model.track_step(frames[1], queries)
        return time.perf_counter() - start

    with torch.inference_mode():
        pair()
        times = [statistics.median(pair() for _ in range(args.iters)) for _ in range(args.repeats)]
    print(f"TrackFormer released layout, {args.height}x{args.width} frame with previous frame + 50 track queries, "
          f"{args.threads} threads: {min(times):.2f}-{max(times):.2f} s per frame")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--width", type=int, default=1066)
    parser.add_argument("--skip-trackformer", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector_rounds(args)
    if not args.skip_trackformer:
        trackformer_rounds(args)


if __name__ == "__main__":
    main()
