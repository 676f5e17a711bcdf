"""The intra-batch model: the MPN mixes information across the whole batch while the test-time
embedding stays per-sample; the loss; reciprocal-neighbour refinement; the embedding API."""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from trackformer.models.levels import Level
from trackformer_metric.losses import IntraBatchLoss
from trackformer_metric.model import IntraBatchModel
from trackformer_metric.mpn import MessagePassingNetwork, reciprocal_sets, refine_with_neighbours


class TinyCNN(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.levels = {"stride4": Level(width, 4)}
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.ReLU(), nn.Conv2d(width, width, 3, 2, 1))

    def forward(self, x):
        return {"stride4": self.body(x)}


def tiny_model(mpn=True, classes=5):
    torch.manual_seed(0)
    net = MessagePassingNetwork(32, num_layers=2, num_heads=4, ffn_dim=64, dropout=0.0) if mpn else None
    return IntraBatchModel(TinyCNN(), classes, embed_dim=32, mpn=net)


def test_mpn_attends_across_the_batch_and_backbone_path_does_not():
    model = tiny_model().train()
    images = torch.randn(6, 3, 32, 32)
    a = model(images)
    changed = images.clone()
    changed[3] = torch.randn(3, 32, 32)
    b = model(changed)
    others = [0, 1, 2, 4, 5]
    # the backbone embedding of an unchanged image does not depend on the rest of the batch
    torch.testing.assert_close(a["embeddings"][others], b["embeddings"][others])
    # every other sample's MPN output moved: each attends to sample 3
    diff = (a["mpn_embeddings"][others] - b["mpn_embeddings"][others]).abs().amax(1)
    assert (diff > 1e-4).all(), diff
    assert a["mpn_logits"].shape == (6, 5) and a["logits"].shape == (6, 5)


def test_mpn_is_permutation_equivariant_over_the_batch():
    mpn = MessagePassingNetwork(16, 1, 2, 32, dropout=0.0).eval()
    x = F.normalize(torch.randn(7, 16), dim=1)
    perm = torch.randperm(7)
    torch.testing.assert_close(mpn(x)[perm], mpn(x[perm]), atol=1e-5, rtol=1e-5)


def test_embed_is_per_sample_and_unit_length():
    model = tiny_model().train()
    images = torch.randn(4, 3, 32, 32)
    full = model.embed(images)
    assert model.training  # embed restores the mode
    torch.testing.assert_close(full[1:2], model.embed(images[1:2]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full.norm(dim=1), torch.ones(4))


def test_no_mpn_variant_has_only_the_backbone_head():
    model = tiny_model(mpn=False).train()
    out = model(torch.randn(4, 3, 32, 32))
    assert "mpn_logits" not in out
    losses = IntraBatchLoss()(out, torch.tensor([0, 1, 2, 3]))
    assert "loss_mpn" not in losses and torch.allclose(losses["loss"], losses["loss_ce"])


def test_loss_is_label_smoothed_ce_with_temperature_on_both_heads():
    torch.manual_seed(1)
    logits, mpn_logits = torch.randn(8, 6), torch.randn(8, 6)
    labels = torch.randint(0, 6, (8,))
    t, eps = 0.2, 0.1

    def reference(z):
        logp = torch.log_softmax(z / t, dim=1)
        nll = -logp.gather(1, labels[:, None])[:, 0]
        return ((1 - eps) * nll - eps * logp.mean(1)).mean()

    out = IntraBatchLoss(temperature=t, label_smoothing=eps)({"logits": logits, "mpn_logits": mpn_logits}, labels)
    torch.testing.assert_close(out["loss_ce"], reference(logits))
    torch.testing.assert_close(out["loss"], reference(logits) + reference(mpn_logits))


def test_reciprocal_sets_match_brute_force():
    torch.manual_seed(2)
    x = F.normalize(torch.randn(40, 8), dim=1)
    k = 5
    sets = reciprocal_sets(x, k)
    sims = x @ x.T
    sims.fill_diagonal_(-float("inf"))
    knn = sims.topk(k, dim=1).indices.tolist()
    for i in range(40):
        expected = [j for j in knn[i] if i in knn[j]]
        got = [j for j in sets[i].tolist() if j >= 0]
        assert got == [i] + expected


def test_refinement_runs_the_mpn_on_each_neighbourhood_alone():
    torch.manual_seed(3)
    mpn = MessagePassingNetwork(16, 1, 2, 32, dropout=0.0).eval()
    x = F.normalize(torch.randn(30, 16), dim=1)
    refined = refine_with_neighbours(mpn, x, k=4, chunk=7)
    sets = reciprocal_sets(x, 4)
    for i in (0, 11, 29):
        members = [j for j in sets[i].tolist() if j >= 0]
        alone = mpn(x[members])[0]  # the neighbourhood as its own batch, query first
        torch.testing.assert_close(refined[i], F.normalize(alone, dim=0), atol=1e-5, rtol=1e-5)


def test_built_from_config_and_served_by_load_embedder(tmp_path):
    """Build through the registries, save a run folder, reload it with the embedding API."""
    from PIL import Image

    from trackformer import load_config
    from trackformer.api import build
    from trackformer_metric.embed import load_embedder

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        "model:\n  name: intra_batch\n  backbone: {name: mobilenet_v2, frozen_stages: 4}\n"
        "  embed_dim: 64\n  mpn_heads: 4\n  mpn_ffn: 128\n"
        "data: {name: image_folder, root: /nonexistent, image_size: 64, resize: 64}\n"
        f"output_dir: {tmp_path}\n")
    cfg = load_config(cfg_file)
    model = build("architectures", cfg.model, data_info={"num_classes": 7})
    assert model.mpn is not None and model.head.classifier.out_features == 7
    assert model.head.classifier.bias is None and not model.head.neck.bias.requires_grad
    (tmp_path / "config.yaml").write_text(cfg_file.read_text())
    (tmp_path / "data_info.json").write_text(json.dumps({"num_classes": 7}))
    torch.save({"model": model.state_dict()}, tmp_path / "best.pt")

    embedder = load_embedder(tmp_path)
    rng = np.random.default_rng(0)
    crops = [Image.fromarray(rng.integers(0, 255, (80, 40, 3), dtype=np.uint8)) for _ in range(3)]
    vectors = embedder(crops)
    assert vectors.shape == (3, 64)
    expected = model.eval().embed(torch.stack([embedder.transform(c) for c in crops]))
    torch.testing.assert_close(vectors, expected, atol=1e-5, rtol=1e-5)
    assert embedder([]).shape == (0, 64)


@pytest.mark.slow
def test_cub100_recipe_reaches_target(shared_dir, tmp_path):
    """The full recipe (about 10 minutes on two CPU cores): the issue's target R@1 >= 0.83 on the test
    classes. Currently fails: the recipe reaches 0.8215 (docs/metric-learning.md)."""
    from trackformer import load_config
    from trackformer.engine.trainer import train

    cfg = load_config("intrabatch_cub100", [f"output_dir={tmp_path}"])
    metrics = train(cfg)
    assert metrics["R@1"] >= 0.83
    for key in ("R@1", "R@2", "R@4", "R@8", "NMI", "MAP@R"):
        assert f"untrained/{key}" in metrics and f"no_mpn/{key}" in metrics
    assert metrics["R@1"] > metrics["untrained/R@1"]
