"""`trackformer bench retrieval CONFIG model.weights=... data.root=...`

Embeds a split (default: test) with the configured model, prints the paper-style table (Recall@K
and NMI in percent, plus MAP@R and R-precision), writes it as `retrieval.json`, and draws
`retrieval_grid.png`: one row per query, its top-k results framed green (same class) or red.
"""
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np


def format_table(metrics: Dict[str, float], ks: List[int]) -> str:
    cols = [f"R@{k}" for k in ks] + ["NMI", "MAP@R", "RP"]
    cols = [c for c in cols if c in metrics]
    head = " | ".join(f"{c:>6}" for c in cols)
    row = " | ".join(f"{100 * metrics[c]:6.2f}" for c in cols)
    return f"{head}\n{'-' * len(head)}\n{row}"


def draw_grid(dataset, labels, neighbours, queries, path: Path, size: int = 96):
    """Query images in the first column, their top-k results after it; frames mark right/wrong."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = neighbours.shape[1]
    fig, axes = plt.subplots(len(queries), k + 1, figsize=(1.3 * (k + 1), 1.4 * len(queries)), squeeze=False)
    for row, q in enumerate(queries):
        for col in range(k + 1):
            ax = axes[row, col]
            idx = q if col == 0 else int(neighbours[q, col - 1])
            ax.imshow(dataset.load(idx).resize((size, size)))
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                color, title = "black", "query"
            else:
                ok = labels[idx] == labels[q]
                color, title = ("tab:green", f"{col}: right") if ok else ("tab:red", f"{col}: wrong")
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(4)
            ax.set_title(title, fontsize=7, color=color)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bench_retrieval(args) -> int:
    import torch

    from trackformer import build, build_dataset, build_model, load_config
    from trackformer.errors import ConfigError
    from trackformer.eval.knn import exact_knn
    from trackformer.eval.retrieval import RetrievalEvaluator
    from trackformer.utils import resolve_device

    cfg = load_config(args.config, args.overrides)
    device = resolve_device(args.device or cfg.device)
    dataset = build_dataset(cfg, args.split)
    if dataset is None:
        raise ConfigError("--split", f"the data set has no {args.split!r} split")
    if not cfg.model.get("weights"):
        print("note: model.weights is not set: evaluating the untrained model", file=sys.stderr)
    model = build_model(cfg).to(device).eval()
    evaluator = build("evaluators", cfg.evaluator) if cfg.evaluator is not None else RetrievalEvaluator()
    if not isinstance(evaluator, RetrievalEvaluator):
        raise ConfigError("evaluator.name", "bench retrieval needs the retrieval evaluator")
    out = Path(args.out) if args.out else Path(cfg.output_dir) / "bench_retrieval"
    out.mkdir(parents=True, exist_ok=True)

    tic = time.monotonic()
    with torch.no_grad():
        emb, labels = evaluator.embed(model, dataset, device)
    embed_s = time.monotonic() - tic
    tic = time.monotonic()
    is_query = getattr(dataset, "is_query", None)
    metrics = evaluator.metrics(emb, labels, is_query)
    search_s = time.monotonic() - tic

    table = format_table(metrics, list(evaluator.ks))
    print(f"{cfg.data.name} {args.split}: {len(dataset)} images, {len(np.unique(labels))} classes\n{table}",
          file=sys.stderr)
    record = {"config": str(args.config), "weights": cfg.model.get("weights"), "data": cfg.data.name,
              "split": args.split, "images": len(dataset), "classes": int(len(np.unique(labels))),
              "metrics": metrics, "embed_seconds": round(embed_s, 2), "metric_seconds": round(search_s, 2)}
    (out / "retrieval.json").write_text(json.dumps(record, indent=2) + "\n")

    if args.grid > 0 and args.topk > 0:
        # queries spread evenly over the split (deterministic), searched in the gallery
        q_idx = np.nonzero(is_query)[0] if is_query is not None else np.arange(len(dataset))
        g_idx = np.nonzero(~np.asarray(is_query))[0] if is_query is not None else np.arange(len(dataset))
        chosen = q_idx[np.linspace(0, len(q_idx) - 1, min(args.grid, len(q_idx))).astype(int)]
        k = min(args.topk, len(g_idx) - 1)
        _, nn = exact_knn(emb[chosen], emb[g_idx], k + 1, backend="faiss")
        neighbours = np.full((len(dataset), k), -1)
        for row, q in enumerate(chosen):
            found = [int(g_idx[j]) for j in nn[row] if g_idx[j] != q][:k]  # the query is not its own result
            neighbours[q, :len(found)] = found
        draw_grid(dataset, labels, neighbours, chosen, out / "retrieval_grid.png")
        record["grid"] = str(out / "retrieval_grid.png")
    print(f"wrote {out / 'retrieval.json'}" + (f" and {record['grid']}" if "grid" in record else ""),
          file=sys.stderr)
    if args.json:
        print(json.dumps(record, indent=2))
    return 0
