"""The SORT baseline: association against brute force, Kalman motion, track life cycle."""
import itertools

import numpy as np

from trackformer_trackq.sort import Sort, SortConfig, associate, iou_matrix


def test_iou_matrix_matches_torchvision():
    import torch
    from torchvision.ops import box_iou

    rng = np.random.default_rng(0)
    a = rng.uniform(0, 50, (6, 2)); a = np.concatenate([a, a + rng.uniform(1, 30, (6, 2))], 1)
    b = rng.uniform(0, 50, (5, 2)); b = np.concatenate([b, b + rng.uniform(1, 30, (5, 2))], 1)
    np.testing.assert_allclose(iou_matrix(a, b), box_iou(torch.tensor(a), torch.tensor(b)).numpy(), rtol=1e-6)


def test_association_is_the_best_assignment_by_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(20):
        dets = rng.uniform(0, 40, (4, 2)); dets = np.concatenate([dets, dets + 15], 1)
        trks = dets[rng.permutation(4)] + rng.normal(0, 3, (4, 4))
        iou = iou_matrix(dets, trks)
        best = max(itertools.permutations(range(4)), key=lambda p: sum(iou[i, p[i]] for i in range(4)))
        matches, _, _ = associate(dets, trks, 0.0)
        got = sum(iou[d, t] for d, t in matches)
        assert abs(got - sum(iou[i, best[i]] for i in range(4))) < 1e-9


def test_association_rejects_low_iou_pairs():
    dets = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], dtype=float)
    trks = np.array([[1, 1, 11, 11], [56, 56, 66, 66]], dtype=float)
    matches, ud, ut = associate(dets, trks, 0.3)
    assert matches == [(0, 0)] and ud == [1] and ut == [1]


def test_constant_velocity_motion_is_learned_and_predicted():
    sort = Sort(SortConfig(min_hits=1, max_age=3))
    for f in range(12):
        sort.step([[10 + 3 * f, 20 + 2 * f, 30 + 3 * f, 60 + 2 * f]], [0.9])
    trk = sort.tracks[0]
    predicted = trk.predict()  # frame 12, never observed
    np.testing.assert_allclose(predicted, [46, 44, 66, 84], atol=0.5)


def test_crossing_objects_keep_their_ids_and_misses_are_bridged():
    sort = Sort(SortConfig(min_hits=1, max_age=2, iou_threshold=0.1))
    ids_a, ids_b = set(), set()
    for f in range(20):
        a = [5 + 4 * f, 40, 25 + 4 * f, 70]
        b = [85 - 4 * f, 55, 105 - 4 * f, 85]  # passes a with a vertical offset
        boxes = [a, b] if f != 4 else [a]  # b missed once: the track survives (max_age 2)
        for r in sort.step(boxes, [0.9] * len(boxes)):
            (ids_a if abs(r["box"][1] - a[1]) < abs(r["box"][1] - b[1]) else ids_b).add(r["id"])
    assert ids_a == {1} and ids_b == {2}


def test_min_hits_and_max_age():
    sort = Sort(SortConfig(min_hits=3, max_age=1))
    box = [[10, 10, 30, 30]]
    assert [r["id"] for r in sort.step(box, [0.9])] == [1]  # first min_hits frames report at once
    sort.step(box, [0.9]); sort.step(box, [0.9]); sort.step(box, [0.9])
    sort.step([], []); sort.step([], [])
    assert not sort.tracks  # deleted after max_age unmatched frames
    out = sort.step(box, [0.9])  # frame 7: a new track is unconfirmed until it has 3 hits
    assert out == [] and sort.tracks[0].id == 2
    sort.step(box, [0.9]); sort.step(box, [0.9])
    assert [r["id"] for r in sort.step(box, [0.9])] == [2]  # created + 3 consecutive hits
    assert sort.step([[10, 10, 30, 30]], [0.3]) == []  # below the detection threshold
