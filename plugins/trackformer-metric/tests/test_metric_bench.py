"""`trackformer bench retrieval`: the table's numbers are the evaluator's on the model's own
embeddings, written as JSON beside a picture grid."""
import json

import numpy as np
import torch
from PIL import Image


def test_bench_retrieval_command(tmp_path):
    from trackformer import build_dataset, build_model, load_config
    from trackformer.cli import main
    from trackformer.eval.retrieval import retrieval_metrics

    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for c in range(4):
        colour = rng.integers(0, 255, 3)
        for j in range(4):
            pixels = np.clip(colour + rng.normal(0, 40, (48, 48, 3)), 0, 255).astype(np.uint8)
            (root / f"class_{c}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / f"class_{c}" / f"{j}.png")
    config = tmp_path / "bench.yaml"
    config.write_text(
        "model:\n  name: intra_batch\n  backbone: {name: mobilenet_v2}\n  embed_dim: 32\n  mpn_heads: 2\n"
        f"data: {{name: image_folder, root: {root}, image_size: 48, resize: 48}}\n"
        "evaluator: {name: retrieval, ks: [1, 2]}\n"
        f"output_dir: {tmp_path / 'run'}\n")
    torch.manual_seed(0)
    cfg = load_config(config)
    model = build_model(cfg)
    torch.save({"model": model.state_dict()}, tmp_path / "w.pt")

    out = tmp_path / "out"
    rc = main(["bench", "retrieval", str(config), f"model.weights={tmp_path / 'w.pt'}", "--out", str(out),
               "--grid", "2", "--topk", "3", "--device", "cpu"])
    assert rc == 0
    record = json.loads((out / "retrieval.json").read_text())
    assert (out / "retrieval_grid.png").stat().st_size > 1000
    assert record["images"] == 8 and record["classes"] == 2  # the test half: classes 2 and 3

    test = build_dataset(cfg, "test")
    model.eval()
    emb = model.embed(torch.stack([test[i][0] for i in range(len(test))])).numpy()
    expected = retrieval_metrics(emb, test.labels, ks=(1, 2))
    for key in ("R@1", "R@2", "MAP@R", "RP", "NMI"):
        assert abs(record["metrics"][key] - expected[key]) < 1e-6, key
