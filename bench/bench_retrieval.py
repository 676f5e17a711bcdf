"""Retrieval evaluation cost at SOP scale: ours vs pytorch-metric-learning vs a bare faiss search.

60,502 x 512 L2-normalized clustered random embeddings in 11,316 classes (SOP's test set size,
2-12 images per class). Each method runs in a fresh subprocess on the same data (same seed), so
its peak resident memory above the data's own is measurable (ru_maxrss); times are wall clock.

    ours (faiss)      Recall@{1,10,100,1000} + MAP@R + R-precision, one pass (faiss short list
                      + counting for the late first hits)
    ours (symmetric)  the same with the blocked torch engine: each block of the symmetric
                      similarity matrix computed once
    PML               AccuracyCalculator(precision_at_1, MAP@R, r_precision; k = max_bin_count)
    faiss 1001-NN     IndexFlatIP.search(k = 1001), nothing else

    python bench/bench_retrieval.py [--n 60502] [--classes 11316] [--threads 0]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def make_data(n: int, classes: int, dim: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = np.full(classes, 2)
    extra = n - sizes.sum()
    while extra > 0:  # spread the rest, at most 12 per class (as SOP)
        c = rng.integers(0, classes, extra)
        add = np.bincount(c, minlength=classes)
        sizes = np.minimum(sizes + add, 12)
        extra = n - sizes.sum()
    labels = rng.permutation(np.repeat(np.arange(classes), sizes))
    centres = rng.standard_normal((classes, dim), dtype=np.float32)
    x = centres[labels]
    for s in range(0, n, 4096):  # in chunks: the baseline peak memory stays near the data's own size
        x[s:s + 4096] += noise * rng.standard_normal((min(4096, n - s), dim), dtype=np.float32)
        x[s:s + 4096] /= np.linalg.norm(x[s:s + 4096], axis=1, keepdims=True)
    return x, labels


def run_method(method: str, args) -> dict:
    import faiss  # noqa: F401  (imports before the baseline: only the method's own memory counts)
    import torch  # noqa: F401
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator  # noqa: F401

    import trackformer.eval.retrieval  # noqa: F401

    x, y = make_data(args.n, args.classes, args.dim, args.noise)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if method == "pml":
        import torch
        from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

        calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"),
                                  k="max_bin_count", device=torch.device("cpu"))
        tic = time.perf_counter()
        r = calc.get_accuracy(x, y)
        out = {"R@1": r["precision_at_1"], "MAP@R": r["mean_average_precision_at_r"], "RP": r["r_precision"]}
    elif method == "faiss1001":
        import faiss

        index = faiss.IndexFlatIP(x.shape[1])
        tic = time.perf_counter()
        index.add(x)
        index.search(x, 1001)
        out = {}
    else:
        from trackformer.eval.retrieval import retrieval_metrics

        tic = time.perf_counter()
        out = retrieval_metrics(x, y, ks=(1, 10, 100, 1000), nmi=False,
                                backend="faiss" if method == "ours_faiss" else "torch")
    seconds = time.perf_counter() - tic
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"method": method, "seconds": seconds, "peak_extra_mb": (peak - base) / 1024, "metrics": out}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=60502)
    p.add_argument("--classes", type=int, default=11316)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--noise", type=float, default=2.5)
    p.add_argument("--threads", type=int, default=0, help="threads per method (0: library default)")
    p.add_argument("--methods", default="faiss1001,pml,ours_faiss,ours_sym")
    p.add_argument("--method", help=argparse.SUPPRESS)  # internal: run one method, print JSON
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    if args.method:
        print(json.dumps(run_method(args.method, args)))
        return
    env = dict(os.environ)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    results = {}
    for m in args.methods.split(","):
        cmd = [sys.executable, __file__, "--method", m, "--n", str(args.n), "--classes", str(args.classes),
               "--dim", str(args.dim), "--noise", str(args.noise)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        results[m] = json.loads(done.stdout.strip().splitlines()[-1])
        r = results[m]
        print(f"{m:<11} {r['seconds']:7.2f} s  peak +{r['peak_extra_mb']:7.0f} MB  "
              + " ".join(f"{k}={v:.4f}" for k, v in r["metrics"].items()), flush=True)
    floor, pml = results.get("faiss1001"), results.get("pml")
    for m in ("ours_faiss", "ours_sym"):
        if m in results:
            t = results[m]["seconds"]
            if pml:
                print(f"{m} / PML AccuracyCalculator = {t / pml['seconds']:.2f}x")
            if floor:
                print(f"{m} / bare faiss 1001-NN     = {t / floor['seconds']:.2f}x")
    if pml and "ours_faiss" in results:
        ours = results["ours_faiss"]["metrics"]
        same = all(abs(ours[k] - pml["metrics"][k]) < 1e-9 for k in ("R@1", "MAP@R", "RP"))
        print(f"R@1, MAP@R, RP equal to PML's: {same}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
