"""Retrieval metrics against pytorch-metric-learning's AccuracyCalculator, scikit-learn's NMI and a
brute-force ranking, for both search engines and with chunking exercised."""
import numpy as np
import pytest
import torch

from trackformer.eval.knn import exact_knn
from trackformer.eval.retrieval import normalized_mutual_info, retrieval_metrics


def clustered(n=1500, classes=150, dim=24, noise=1.3, seed=0, lone=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    labels[:lone] = classes + np.arange(lone)  # classes with a single sample: no positive at all
    centres = rng.normal(size=(classes + lone, dim))
    x = centres[labels] + noise * rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels


def brute_force_recall(q, ql, g, gl, ks, self_index):
    sims = q @ g.T
    if self_index:
        np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")
    match = gl[order] == ql[:, None]
    if self_index:
        match &= order != np.arange(len(q))[:, None]
    has = match.any(1)
    first = np.argmax(match, 1)
    return {k: float(np.mean(first[has] < k)) for k in ks}


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_equals_accuracy_calculator(backend):
    calc_mod = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    x, y = clustered()
    ours = retrieval_metrics(x, y, ks=(1, 2, 4, 8), backend=backend, chunk_size=256)
    calc = calc_mod.AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision", "NMI"),
                                       k="max_bin_count", device=torch.device("cpu"))
    ref = calc.get_accuracy(x, y)
    assert ours["R@1"] == pytest.approx(ref["precision_at_1"], abs=1e-9)
    assert ours["MAP@R"] == pytest.approx(ref["mean_average_precision_at_r"], abs=1e-9)
    assert ours["RP"] == pytest.approx(ref["r_precision"], abs=1e-9)
    # same faiss k-means settings (20 iterations, seed 1234) and the same NMI normalization
    assert ours["NMI"] == pytest.approx(ref["NMI"], abs=1e-9)
    assert 0.2 < ours["R@1"] < 0.95  # the data is neither trivial nor hopeless


def test_query_gallery_equals_accuracy_calculator():
    calc_mod = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")
    x, y = clustered(n=1200, seed=1, lone=0)
    q, ql, g, gl = x[:300], y[:300], x[300:], y[300:]
    for backend in ("faiss", "torch"):
        ours = retrieval_metrics(g, gl, ks=(1,), query_embeddings=q, query_labels=ql, nmi=False,
                                 backend=backend, chunk_size=128)
        calc = calc_mod.AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"),
                                           k="max_bin_count", device=torch.device("cpu"))
        ref = calc.get_accuracy(q, ql, g, gl, ref_includes_query=False)
        assert ours["R@1"] == pytest.approx(ref["precision_at_1"], abs=1e-9)
        assert ours["MAP@R"] == pytest.approx(ref["mean_average_precision_at_r"], abs=1e-9)
        assert ours["RP"] == pytest.approx(ref["r_precision"], abs=1e-9)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_recall_at_large_k_matches_brute_force(backend):
    # K up to 1000 lies far beyond the short neighbour list: these ranks come from the counting pass
    x, y = clustered(n=2000, classes=400, noise=2.5, seed=2)
    ks = (1, 10, 100, 1000)
    ours = retrieval_metrics(x, y, ks=ks, nmi=False, backend=backend, chunk_size=300)
    ref = brute_force_recall(x, y, x, y, ks, self_index=True)
    for k in ks:
        assert ours[f"R@{k}"] == pytest.approx(ref[k], abs=1e-12), k
    assert ours["R@10"] < ours["R@100"] < ours["R@1000"]


def test_query_excluded_by_index_not_by_distance():
    # two identical vectors of one class: each finds the other at distance 0 (a duplicate is a hit)
    x = np.array([[1, 0], [1, 0], [0, 1], [0.1, 0.99], [-1, 0.2]], dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.array([0, 0, 1, 2, 1])
    for backend in ("faiss", "torch"):
        m = retrieval_metrics(x, y, ks=(1, 2), nmi=False, backend=backend)
        # class 2 has no other sample: left out. Queries 0 and 1 hit each other, query 4 hits 2,
        # query 2's nearest is 3 (class 2), its positive 4 comes second
        assert m["R@1"] == pytest.approx(3 / 4)
        assert m["R@2"] == pytest.approx(1.0)


def test_knn_engines_agree_and_exclude_self():
    x, _ = clustered(n=900, seed=3)
    v1, i1 = exact_knn(x, x, 7, exclude_self=True, backend="faiss", chunk_size=100)
    v2, i2 = exact_knn(x, x, 7, exclude_self=True, backend="torch", chunk_size=128)
    assert (i1 == i2).all()
    np.testing.assert_allclose(v1, v2, atol=1e-5)
    assert not (i1 == np.arange(len(x))[:, None]).any()
    full = x @ x.T
    np.fill_diagonal(full, -np.inf)
    np.testing.assert_array_equal(np.argsort(-full, 1)[:, :7], i2)


def test_nmi_equals_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    for n, a, b in [(500, 10, 10), (300, 3, 17), (50, 1, 5)]:
        t, p = rng.integers(0, a, n), rng.integers(0, b, n)
        p[: n // 2] = t[: n // 2]  # partly informative
        assert normalized_mutual_info(t, p) == pytest.approx(metrics.normalized_mutual_info_score(t, p), abs=1e-12)
    t = rng.integers(0, 7, 100)
    assert normalized_mutual_info(t, t + 3) == pytest.approx(1.0)


def test_evaluator_refines_through_the_models_own_method():
    """No model-specific flag in the core evaluator: a model's `refine(embeddings)` is called when it
    has one, and a model without one is searched on its plain embeddings."""
    from trackformer.eval.retrieval import RetrievalEvaluator

    class Embeds(torch.nn.Module):
        def embed(self, images):  # [B, 3, H, W] -> [B, 2]
            return images.mean(dim=(2, 3))[:, :2]

    class Refines(Embeds):
        def refine(self, embeddings):  # [N, 2] -> [N, 2]
            return embeddings * 0 + 1

    images = torch.rand(6, 3, 4, 4)
    dataset = [(images[i], i % 2) for i in range(6)]
    evaluator = RetrievalEvaluator(batch_size=4)
    plain, labels = evaluator.embed(Embeds(), dataset, "cpu")
    np.testing.assert_allclose(plain, images.mean(dim=(2, 3))[:, :2].numpy(), rtol=1e-6)
    assert labels.tolist() == [0, 1, 0, 1, 0, 1]
    refined, _ = evaluator.embed(Refines(), dataset, "cpu")
    assert (refined == 1).all()
