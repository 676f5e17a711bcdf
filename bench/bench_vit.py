"""ViT and MAE speed: the MAE pre-training step against the same ViT's full-token forward + backward,
and our ViT backbone's forward against torchvision's `VisionTransformer` with the same weights.

    PYTHONPATH=.:plugins/trackformer-vit .venv/bin/python bench/bench_vit.py --threads 2 --rounds 3

1. MAE step (forward with mask ratio 0.75 + decoder + loss, backward) / ViT full-token forward +
   backward (all patches through the same encoder, a scalar of its tokens), same batch; for
   ViT-B/16 at 224 px with MAE's default 512 x 8 decoder, with a 1-block decoder, and for the CPU
   configuration of configs/mae_cub100.yaml (ViT-Ti width, depth 6, 64 px, patch 8, decoder 128 x 2).
   Issue bar: <= 0.4x.
2. ViT-B/16 forward (no grad, eval) of our backbone vs torchvision `vit_b_16` at 224 px, and at
   640 px against torchvision built for 640 px with its table interpolated by torchvision's own
   `interpolate_embeddings` (ours resizes the 224-px table on the fly). Issue bar: <= 1.0x.

The variants alternate in every round (load from other processes hits both); printed: the median
seconds per call and the ratio's range over rounds.
"""
import argparse
import statistics
import time

import torch


def timed(fn, iters: int) -> float:
    tic = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - tic) / iters


def compare(pairs, rounds: int, iters: int):
    """pairs {name: fn}, the first is the numerator -> ({name: median s}, (min ratio, max ratio))."""
    for fn in pairs.values():
        fn()  # warm-up
    times = {name: [] for name in pairs}
    for _ in range(rounds):
        for name, fn in pairs.items():
            times[name].append(timed(fn, iters))
    a, b = list(times.values())
    ratios = [x / y for x, y in zip(a, b)]
    return {n: statistics.median(t) for n, t in times.items()}, (min(ratios), max(ratios))


def mae_vs_full(image, patch, dim, depth, heads, dec_dim, dec_depth, dec_heads, batch, rounds, iters):
    from trackformer_vit.mae import MaskedAutoencoder

    torch.manual_seed(0)
    mae = MaskedAutoencoder(image, patch, dim, depth, heads, 4.0, dec_dim, dec_depth, dec_heads, 0.75, True)
    images = torch.randn(batch, 3, image, image)

    def mae_step():
        mae(images)["loss"].backward()
        mae.zero_grad(set_to_none=True)

    def full_step():  # the same encoder on every patch
        tokens, _ = mae.__class__.__mro__[1].forward(mae, images)
        tokens.square().mean().backward()
        mae.zero_grad(set_to_none=True)

    return compare({"mae": mae_step, "full": full_step}, rounds, iters)


def forward_vs_torchvision(size, rounds, iters, batch):
    import torchvision
    from torchvision.models.vision_transformer import interpolate_embeddings

    from trackformer_vit.layouts import load_vit_weights
    from trackformer_vit.vit import VisionTransformer

    torch.manual_seed(0)
    tv224 = torchvision.models.vit_b_16(weights=None).eval()
    ours = VisionTransformer(224, 16, 768, 12, 12).eval()
    load_vit_weights(ours, tv224.state_dict())
    tv = tv224
    if size != 224:
        tv = torchvision.models.vit_b_16(weights=None, image_size=size).eval()
        tv.load_state_dict(interpolate_embeddings(size, 16, tv224.state_dict()))
    images = torch.randn(batch, 3, size, size)

    @torch.no_grad()
    def run_ours():
        ours.feature_map(images)

    @torch.no_grad()
    def run_tv():
        x = tv._process_input(images)
        tv.encoder(torch.cat([tv.class_token.expand(batch, -1, -1), x], dim=1))

    return compare({"ours": run_ours, "torchvision": run_tv}, rounds, iters)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8, help="batch of the ViT-B cases")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds x {args.iters} calls")
    cases = {"ViT-B/16 224px, decoder 512x8 (MAE default)": (224, 16, 768, 12, 12, 512, 8, 16, args.batch),
             "ViT-B/16 224px, decoder 512x1": (224, 16, 768, 12, 12, 512, 1, 16, args.batch),
             "mae_cub100: ViT-Ti width depth 6, 64px/8, decoder 128x2": (64, 8, 192, 6, 3, 128, 2, 4, 64)}
    for name, shape in cases.items():
        med, (lo, hi) = mae_vs_full(*shape, args.rounds, args.iters)
        print(f"MAE step / full fwd+bwd  {name}: {med['mae']:.3f}s / {med['full']:.3f}s = {lo:.2f}-{hi:.2f}x")
    for size in (224, 640):
        med, (lo, hi) = forward_vs_torchvision(size, args.rounds, args.iters, 1 if size == 640 else args.batch)
        batch = 1 if size == 640 else args.batch
        print(f"ViT-B/16 forward {size}px batch {batch}: ours {med['ours']:.3f}s / torchvision "
              f"{med['torchvision']:.3f}s = {lo:.2f}-{hi:.2f}x")


if __name__ == "__main__":
    main()
