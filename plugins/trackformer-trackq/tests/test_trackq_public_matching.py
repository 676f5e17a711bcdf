"""Public-detection births: TrackFormer's `min_iou_0_5` and `center_distance` rules beside the one-to-one
Hungarian gate, on hand-made detections."""
import torch

from trackformer_trackq.tracker import Tracker, TrackerConfig, _public_support

D1, D2 = [10.0, 10, 50, 50], [30.0, 10, 70, 50]  # IoU(D1, D2) = 1/3
P1 = [12.0, 10, 52, 50]  # IoU with D1 0.905, with D2 0.47
P2 = [20.0, 10, 60, 50]  # IoU with D1 0.6, with D2 0.6: ties go to the first detection


def support(matching, dets, public):
    return _public_support(torch.tensor(dets), torch.tensor(public), matching, 0.5).tolist()


def test_min_iou_each_public_box_claims_only_its_best_detection():
    assert support("min_iou_0_5", [D1, D2], [P1]) == [0]
    assert support("min_iou_0_5", [D1, D2], [P1, P2]) == [0]  # both claim D1: one birth
    assert support("one_to_one", [D1, D2], [P1, P2]) == [0, 1]  # Hungarian spreads them over both
    assert support("min_iou_0_5", [D1, D2], [[200.0, 200, 240, 240]]) == []


def test_center_distance_claims_the_nearest_centre_within_the_detections_area():
    small = [0.0, 0, 4, 4]  # area 16
    assert support("center_distance", [small, D1], [[1.0, 1, 5, 5]]) == [0]  # distance^2 2 < 16
    assert support("center_distance", [small], [[4.0, 4, 8, 8]]) == []  # distance^2 32 >= 16
    assert support("center_distance", [D1, D2], [[25.0, 10, 65, 50]]) == [1]  # nearer centre wins


def test_tracker_default_is_the_official_rule():
    cfg = TrackerConfig(public_detections=True, detection_nms=1.0)
    dets = {"scores": torch.tensor([0.9, 0.9]), "boxes": torch.tensor([D1, D2]), "embeds": torch.zeros(2, 4)}
    res = Tracker(cfg).step(None, dets, public_boxes=torch.tensor([P1, P2]))
    assert [r["box"].tolist() for r in res] == [D1]
