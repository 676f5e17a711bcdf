"""The online tracker's state machine driven by hand-made network outputs."""
import torch

from trackformer_trackq.tracker import Tracker, TrackerConfig

D = 4


def out(scores, boxes, tag=0.0):
    n = len(scores)
    return {"scores": torch.tensor(scores, dtype=torch.float32),
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
            "embeds": torch.full((n, D), tag) + torch.arange(n, dtype=torch.float32)[:, None]}


NONE = out([], [])
A = [10, 10, 30, 40]
B = [60, 60, 90, 100]


def ids(res):
    return sorted(r["id"] for r in res)


def track_out(tracker, scores, boxes):
    assert tracker.queries() is not None and len(tracker.queries()) == len(scores)
    return out(scores, boxes, tag=1.0)


def test_birth_only_above_detection_threshold():
    tr = Tracker()
    res = tr.step(None, out([0.9, 0.39, 0.41], [A, B, [100, 10, 120, 30]]))
    assert ids(res) == [1, 2]
    assert torch.equal(res[0]["box"], torch.tensor(A, dtype=torch.float32))
    # the new track's query is the embedding its object query produced
    assert torch.equal(tr.queries()[0], torch.full((D,), 0.0))
    assert torch.equal(tr.queries()[1], torch.full((D,), 2.0))


def test_continuation_updates_box_and_query():
    tr = Tracker()
    tr.step(None, out([0.9], [A]))
    moved = [12, 11, 32, 41]
    res = tr.step(track_out(tr, [0.8], [moved]), NONE)
    assert ids(res) == [1]
    assert res[0]["box"].tolist() == moved and abs(res[0]["score"] - 0.8) < 1e-6
    assert torch.equal(tr.queries()[0], torch.full((D,), 1.0))


def test_low_score_turns_inactive_then_dies_after_patience():
    tr = Tracker(TrackerConfig(inactive_patience=2))
    tr.step(None, out([0.9], [A]))
    assert tr.step(track_out(tr, [0.3], [A]), NONE) == []  # inactive: not reported
    assert len(tr.inactive) == 1 and not tr.active
    # still queried for `inactive_patience` frames, then forgotten
    tr.step(track_out(tr, [0.1], [A]), NONE)
    assert len(tr.inactive) == 1
    tr.step(track_out(tr, [0.1], [A]), NONE)
    assert tr.queries() is None and not tr.inactive


def test_reidentification_within_patience_keeps_identity():
    tr = Tracker(TrackerConfig(inactive_patience=3))
    tr.step(None, out([0.9, 0.9], [A, B]))
    tr.step(track_out(tr, [0.9, 0.2], [A, B]), NONE)  # track 2 occluded
    tr.step(track_out(tr, [0.9, 0.3], [A, B]), NONE)
    # the inactive track's query scores again: it returns with its id, and no new id is spent
    res = tr.step(track_out(tr, [0.9, 0.7], [A, [62, 61, 92, 101]]), NONE)
    assert ids(res) == [1, 2] and tr.next_id == 3 and not tr.inactive


def test_after_patience_a_returning_object_gets_a_new_id():
    tr = Tracker(TrackerConfig(inactive_patience=1))
    tr.step(None, out([0.9], [A]))
    tr.step(track_out(tr, [0.1], [A]), NONE)
    tr.step(track_out(tr, [0.1], [A]), NONE)
    assert tr.queries() is None
    assert ids(tr.step(None, out([0.9], [A]))) == [2]


def test_new_detection_suppressed_by_overlapping_track():
    tr = Tracker()
    tr.step(None, out([0.9], [A]))
    almost_a = [10, 10, 30, 41]  # IoU 40/41 > 0.9 with A
    shifted = [10, 14, 30, 44]  # IoU 26/34 < 0.9
    res = tr.step(track_out(tr, [0.5], [A]), out([0.99, 0.95], [almost_a, shifted]))
    assert ids(res) == [1, 2]
    assert res[1]["box"].tolist() == shifted
    # and new detections suppress each other, the higher score winning
    tr2 = Tracker()
    res = tr2.step(None, out([0.6, 0.8], [A, almost_a]))
    assert len(res) == 1 and res[0]["box"].tolist() == almost_a


def test_nms_among_tracks_deletes_the_weaker():
    tr = Tracker()
    tr.step(None, out([0.9, 0.9], [A, B]))
    res = tr.step(track_out(tr, [0.6, 0.8], [A, [10, 10, 30, 41]]), NONE)
    assert ids(res) == [2]
    assert not tr.inactive  # deleted, not kept for re-identification


BIG = [10, 10, 50, 90]
SMALL = [20, 30, 40, 70]  # in front of BIG; IoU(BIG, SMALL) = 0.25


def test_nms_by_continuity_keeps_the_track_that_did_not_jump():
    """The track of BIG slides onto SMALL with the higher score: ranked by score it wins and SMALL's own
    track dies; ranked by continuity (IoU with its own previous box) SMALL's track stays."""
    for rank, survivor in (("score", 1), ("continuity", 2)):
        tr = Tracker(TrackerConfig(track_nms_rank=rank, track_nms=0.5))
        tr.step(None, out([0.9, 0.9], [BIG, SMALL]))
        res = tr.step(track_out(tr, [0.9, 0.7], [[20, 30, 40, 71], SMALL]), NONE)
        assert ids(res) == [survivor], rank


def test_nms_to_inactive_keeps_the_suppressed_track_with_its_previous_box_and_query():
    tr = Tracker(TrackerConfig(track_nms_rank="continuity", track_nms=0.5, track_nms_to_inactive=True))
    tr.step(None, out([0.9, 0.9], [BIG, SMALL]))
    query = tr.queries()[0].clone()
    tr.step(track_out(tr, [0.9, 0.7], [[20, 30, 40, 71], SMALL]), NONE)
    [big] = tr.inactive
    assert big.id == 1 and big.box.tolist() == BIG and torch.equal(big.query, query)
    # BIG comes out from behind SMALL: its old query re-identifies it
    res = tr.step(track_out(tr, [0.7, 0.8], [SMALL, [14, 10, 54, 90]]), NONE)
    assert ids(res) == [1, 2]


def test_public_detection_gating():
    cfg = TrackerConfig(public_detections=True)
    dets = out([0.9, 0.9], [A, B])
    assert Tracker(cfg).step(None, dets) == []
    assert Tracker(cfg).step(None, dets, public_boxes=torch.zeros(0, 4)) == []
    # a public box supports the detection it overlaps with IoU >= 0.5 only
    res = Tracker(cfg).step(None, dets, public_boxes=torch.tensor([[12.0, 12, 32, 42]]))
    assert len(res) == 1 and res[0]["box"].tolist() == A
    weak = torch.tensor([[20.0, 25, 40, 55]])  # IoU with A well below 0.5
    assert Tracker(cfg).step(None, dets, public_boxes=weak) == []
    # one public box starts at most one track
    res = Tracker(TrackerConfig(public_detections=True, detection_nms=1.0)).step(
        None, out([0.9, 0.8], [A, [10, 10, 30, 39]]), public_boxes=torch.tensor([A], dtype=torch.float32))
    assert len(res) == 1
    # tracks continue without public support; only births are gated
    tr = Tracker(cfg)
    tr.step(None, dets, public_boxes=torch.tensor([A, B], dtype=torch.float32))
    assert ids(tr.step(track_out(tr, [0.9, 0.9], [A, B]), NONE, public_boxes=None)) == [1, 2]


def test_appearance_reid_revives_inactive_track():
    red, blue = torch.tensor([1.0, 0, 0]), torch.tensor([0, 0, 1.0])
    image = torch.zeros(3, 120, 120)
    image[:, 10:40, 10:30] = red[:, None, None]
    image[:, 60:100, 60:90] = blue[:, None, None]

    def embed(crops):  # mean colour of each crop: a stand-in appearance model
        return crops.mean(dim=(2, 3))

    cfg = TrackerConfig(reid_appearance=True, reid_similarity=0.9, inactive_patience=5)
    tr = Tracker(cfg, embed=embed)
    tr.step(None, out([0.9], [A]), image=image)
    tr.step(track_out(tr, [0.1], [A]), NONE, image=image)
    # the red object reappears elsewhere; its query no longer scores, but appearance matches
    moved = torch.zeros(3, 120, 120)
    moved[:, 70:100, 80:100] = red[:, None, None]
    res = tr.step(track_out(tr, [0.1], [A]), out([0.9], [[80, 70, 100, 100]]), image=moved)
    assert ids(res) == [1] and not tr.inactive
    # a differently coloured newcomer does not steal an inactive identity
    tr.step(track_out(tr, [0.1], [A]), NONE, image=moved)
    res = tr.step(track_out(tr, [0.1], [A]), out([0.9], [B]), image=image)
    assert ids(res) == [2]
