"""Training throughput of the intra-batch model with and without the message passing network.

Both models are built from the same config (default: intrabatch_cub100, its
backbone, freezing and training crop size), the second with `model.mpn_layers=0`. A training
step is forward + loss + backward + RAdam step on one P x K batch of random images (data loading
left out: it is the same for both). The two models alternate round by round, so machine load
drifts hit both alike; the median step time of each gives images/s.

    python bench/bench_mpn.py [--config intrabatch_cub100] [--rounds 8] [--threads 0]
"""
import argparse
import statistics
import time

import torch


def build(config: str, overrides):
    from trackformer import build as build_component
    from trackformer import build_model, load_config

    cfg = load_config(config, list(overrides))
    model = build_model(cfg, data_info={"num_classes": 40}).train()
    criterion = build_component("losses", cfg.loss)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.RAdam(params, lr=1e-5)
    size = cfg.data.train_size or cfg.data.image_size
    k = cfg.data.samples_per_class or 1
    return model, criterion, opt, cfg.train.batch_size, size, k


def step(model, criterion, opt, images, labels):
    out = model(images, labels)
    loss = criterion(out, labels)["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="intrabatch_cub100")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    variants = {"with MPN": build(args.config, []), "without MPN": build(args.config, ["model.mpn_layers=0"])}
    _, _, _, batch, size, k = variants["with MPN"]
    images = torch.randn(batch, 3, size, size)
    labels = torch.arange(batch) // k
    for model, criterion, opt, *_ in variants.values():  # warm-up
        step(model, criterion, opt, images, labels)
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (model, criterion, opt, *_) in variants.items():
            tic = time.perf_counter()
            step(model, criterion, opt, images, labels)
            times[name].append(time.perf_counter() - tic)
    rate = {name: batch / statistics.median(t) for name, t in times.items()}
    mpn_params = sum(p.numel() for p in variants["with MPN"][0].mpn.parameters())
    print(f"batch {batch} x {size}px, {torch.get_num_threads()} threads, {args.rounds} rounds; "
          f"MPN parameters: {mpn_params:,}")
    for name, r in rate.items():
        print(f"{name:<12} {r:7.1f} images/s (median step {batch / r * 1000:.0f} ms)")
    print(f"MPN cost: {100 * (1 - rate['with MPN'] / rate['without MPN']):.1f}% of throughput "
          f"(with/without = {rate['with MPN'] / rate['without MPN']:.3f})")


if __name__ == "__main__":
    main()
