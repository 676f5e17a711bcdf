"""ByteTrack-style association: the low-score pool, births, lost tracks, the capped assignment."""
import itertools

import numpy as np
import pytest

from trackformer_trackq.bytetrack import ByteTrack, assign, normalise_scores
from trackformer_trackq.settings import ByteTrackConfig

A = np.array([100.0, 100, 140, 200])
B = np.array([300.0, 120, 345, 230])


def _walk(f):
    return A + [3 * f, 0, 3 * f, 0], B + [-2 * f, 1 * f, -2 * f, 1 * f]


def test_second_association_uses_the_low_score_detections():
    """Frame 6: A's detection scores 0.3 (occluded): the low pool keeps A's track alive with its id.
    Without the low pool (low_thresh above 0.3) A's track is lost for that frame and comes back
    from the lost list, under the same id, at frame 7."""
    runs = {}
    for low in (0.1, 0.35):
        bt = ByteTrack(ByteTrackConfig(low_thresh=low))
        out = []
        for f in range(1, 10):
            a, b = _walk(f)
            out.append(bt.step([a, b], [0.3 if f == 6 else 0.9, 0.9]))
            if f == 6:
                runs[(low, "low_used")] = bt.last_low_matches
        runs[low] = out
    ids = lambda frame_out: sorted(r["id"] for r in frame_out)
    assert runs[(0.1, "low_used")] == [0]                          # row 0 (A, score 0.3) was matched
    assert ids(runs[0.1][5]) == [1, 2] and all(ids(o) == [1, 2] for o in runs[0.1])
    a6 = next(r for r in runs[0.1][5] if r["id"] == 1)
    assert a6["score"] == pytest.approx(0.3) and abs(a6["box"][0] - _walk(6)[0][0]) < 3
    assert runs[(0.35, "low_used")] == [] and ids(runs[0.35][5]) == [2]
    assert ids(runs[0.35][6]) == [1, 2]                            # re-found from the lost list


def test_low_detections_never_start_tracks_and_births_need_a_second_frame():
    bt = ByteTrack(ByteTrackConfig())
    assert [r["id"] for r in bt.step([A], [0.9])] == [1]            # the first frame confirms at once
    assert bt.step([A, B], [0.9, 0.5]) and all(t.id == 1 for t in bt.tracked)   # B is low: no track
    assert [r["id"] for r in bt.step([A, B], [0.9, 0.65])] == [1]   # 0.65 < 0.6 + 0.1: high, no birth
    assert [r["id"] for r in bt.step([A, B], [0.9, 0.8])] == [1]    # born, unconfirmed
    assert sorted(r["id"] for r in bt.step([A, B], [0.9, 0.8])) == [1, 2]   # confirmed by a match


def test_lost_track_is_forgotten_after_the_buffer():
    bt = ByteTrack(ByteTrackConfig(track_buffer=3), frame_rate=30)
    bt.step([A], [0.9])
    for _ in range(3):
        bt.step([], [])
    assert bt.lost and bt.lost[0].id == 1                           # frame 4: last seen 3 frames ago
    bt.step([], [])
    assert not bt.lost                                              # 4 frames > buffer 3
    assert [r["id"] for r in bt.step([A], [0.9])] == []             # a new track, unconfirmed


def test_constant_velocity_is_followed():
    bt = ByteTrack(ByteTrackConfig())
    for f in range(1, 15):
        out = bt.step([A + [4 * f, 2 * f, 4 * f, 2 * f]], [0.9])
    bt.tracked[0].mean, _ = bt.kf.predict(bt.tracked[0].mean, bt.tracked[0].cov)
    np.testing.assert_allclose(bt.tracked[0].box, A + [60, 30, 60, 30], atol=1.0)
    assert out[0]["id"] == 1


def test_capped_assignment_is_optimal_by_brute_force():
    """Minimum of (sum of pair costs + limit/2 per unmatched row and column), pairs <= limit only."""
    rng = np.random.default_rng(0)
    for _ in range(30):
        n, m = rng.integers(1, 5, 2)
        cost, limit = rng.uniform(0, 1, (n, m)), 0.6
        pairs, free_r, free_c = assign(cost, limit)
        got = sum(cost[r, c] for r, c in pairs) + limit / 2 * (len(free_r) + len(free_c))
        best = np.inf
        for k in range(min(n, m) + 1):
            for rows in itertools.combinations(range(n), k):
                for cols in itertools.permutations(range(m), k):
                    if all(cost[r, c] <= limit for r, c in zip(rows, cols)):
                        best = min(best, sum(cost[r, c] for r, c in zip(rows, cols)) + limit / 2 * (n + m - 2 * k))
        assert got == pytest.approx(best) and all(cost[r, c] <= limit for r, c in pairs)


def test_score_normalisation():
    acf = np.array([0.14, 133.2, 44.0, 13.1, 44.0])
    np.testing.assert_allclose(normalise_scores(acf, "auto"), [0, 1, 0.5, 0.25, 0.5])
    probs = np.array([0.2, 0.9])
    assert normalise_scores(probs, "auto") is not None and list(normalise_scores(probs, "auto")) == [0.2, 0.9]
    assert list(normalise_scores(acf, "none")) == list(acf)
