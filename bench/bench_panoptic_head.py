"""Cost of DETR panoptic's mask head over detection alone (CPU, float32).

1. Training step of the generated-scenes config (detr_panoptic_synthetic: ResNet-18 to res4, 64-pixel
   images, batch 8, 10 queries): the full panoptic loss vs the same model's DETR part with DETR's loss.
2. Inference of the official R50 layouts on one 512x512 image: detr_r50_panoptic_coco (masks for all
   100 queries) vs detr_r50_coco (random weights; the time does not depend on them).

    python bench/bench_panoptic_head.py [--repeats 5]
"""
import argparse
import tempfile
import time

import torch


def best(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return min(times), max(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import trackformer
    from trackformer.api import build, build_dataset, build_model
    from trackformer_detr.criterion import SetCriterion
    from trackformer_detr.matcher import HungarianMatcher

    torch.manual_seed(0)
    root = tempfile.mkdtemp(prefix="bench_panoptic_")
    cfg = trackformer.load_config("detr_panoptic_synthetic", [f"data.root={root}", "data.num_train=8",
                                                              "data.num_test=0"])
    data = build_dataset(cfg, "train")
    model = build_model(cfg, data.info)
    panoptic_loss = build("losses", cfg.loss, matcher=build("matchers", cfg.matcher), model=model)
    detr_loss = SetCriterion(model.num_classes, HungarianMatcher())
    inputs, targets = data.collate_fn([data[i] for i in range(8)])

    def step(net, criterion):
        def run():
            net.zero_grad()
            criterion(net(inputs, targets), targets)["loss"].backward()
        return run

    with_masks = best(step(model, panoptic_loss), args.repeats)
    boxes_only = best(step(model.detr, detr_loss), args.repeats)
    print(f"training step (synthetic, batch 8): DETR {boxes_only[0] * 1e3:.0f}-{boxes_only[1] * 1e3:.0f} ms, "
          f"panoptic {with_masks[0] * 1e3:.0f}-{with_masks[1] * 1e3:.0f} ms, x{with_masks[0] / boxes_only[0]:.2f}")

    image = torch.randn(1, 3, 512, 512)
    results = {}
    for name in ("detr_r50_coco", "detr_r50_panoptic_coco"):
        net = build_model(trackformer.load_config(name), data_info={}).eval()
        with torch.no_grad():
            results[name] = best(lambda: net(image), max(2, args.repeats // 2))
    a, b = results["detr_r50_coco"], results["detr_r50_panoptic_coco"]
    heads = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("detr."))
    print(f"inference R50 512x512, 100 queries: DETR {a[0] * 1e3:.0f} ms, panoptic {b[0] * 1e3:.0f} ms, "
          f"x{b[0] / a[0]:.2f} (mask head + attention map: {heads:,} parameters)")


if __name__ == "__main__":
    main()
