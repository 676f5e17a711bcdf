"""The released TrackFormer MOT17/MOT20 layout (`../shared/reference/deformable_trackformer_mot17_state_dict.txt`,
written from the official code): `trackformer_mot17_deformable` builds exactly its keys, order and shapes, and a
checkpoint saved the released way ({model, args: argparse.Namespace, optimizer, lr_scheduler, epoch}, keys
with the legacy `detr.` prefix and a `track_encoding` entry) loads strictly with weights_only=True."""
import argparse
import collections
import re
from pathlib import Path

import pytest
import torch

REFERENCE = Path(__file__).resolve().parents[4] / "shared" / "reference" / "deformable_trackformer_mot17_state_dict.txt"
CONFIG = "trackformer_mot17_deformable"


def official_layout():
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} is not present")
    rows = [line.split("\t") for line in REFERENCE.read_text().splitlines() if line and not line.startswith("#")]
    return [(k, tuple(int(n) for n in s.strip("()").split(",") if n.strip())) for k, s in rows]


@pytest.fixture(scope="module")
def released_model():
    import trackformer

    return trackformer.build_model(trackformer.load_config(CONFIG))


def test_config_builds_the_released_layout_with_both_quirks(released_model):
    from trackformer_deformable.ms_deform_attn import MSDeformAttn

    expected = official_layout()
    assert len(expected) == 597
    assert [(k, tuple(v.shape)) for k, v in released_model.state_dict().items()] == expected
    assert sum(p.numel() for p in released_model.parameters()) == 44233874  # unique tensors, as documented
    assert released_model.transformer.memory_order == "current_previous"
    assert {m.offset_normalizer for m in released_model.modules() if isinstance(m, MSDeformAttn)} == {"hw"}
    assert released_model.overflow_boxes and released_model.multi_frame


def released_checkpoint(generator):
    """Random tensors under the released keys (the decoder's box heads the same tensors as `bbox_embed.N`),
    saved from the tracking wrapper (`detr.` prefix) with an old `track_encoding` entry, as the released
    files hold them."""
    tensors = {}
    for key, shape in official_layout():
        source = re.sub(r"^transformer\.decoder\.bbox_embed\.", "bbox_embed.", key)
        if source not in tensors:
            if key.endswith("num_batches_tracked"):
                tensors[source] = torch.tensor(0)
            else:
                tensors[source] = torch.randn(shape, generator=generator)
        tensors[key] = tensors[source]
    state = {f"detr.{k}": tensors[k] for k, _ in official_layout()}
    state["detr.track_encoding.weight"] = torch.randn(4, 288, generator=generator)
    return state


def test_released_checkpoint_loads_strictly_and_safely(released_model, tmp_path):
    import trackformer

    state = released_checkpoint(torch.Generator().manual_seed(0))
    args = argparse.Namespace(lr=2e-4, deformable=True, multi_frame_attention=True, lr_drop=10,
                              tracker_cfg=argparse.Namespace(detection_obj_score_thresh=0.4), resume="")
    moment = torch.zeros(3)
    torch.save({"model": state, "args": args, "epoch": 40,
                "optimizer": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": moment}},
                              "param_groups": [{"lr": 2e-4, "params": [0]}]},
                "lr_scheduler": {"milestones": collections.Counter([10]), "last_epoch": 40}},
               tmp_path / "checkpoint_epoch_40.pth")
    cfg = trackformer.load_config(CONFIG, [f"model.weights={tmp_path / 'checkpoint_epoch_40.pth'}"])
    model = trackformer.build_model(cfg)
    loaded = model.state_dict()
    for key, value in state.items():
        if "track_encoding" not in key:
            assert torch.equal(loaded[key[len("detr."):]], value), key
    # the decoder's box heads are the detector's (one tensor, saved twice)
    assert model.transformer.decoder.bbox_embed[5] is model.bbox_embed[5]


class Payload:
    """Any class but argparse.Namespace stays refused."""


def test_a_checkpoint_holding_other_objects_is_still_refused(tmp_path):
    from trackformer.checkpoint import load_checkpoint
    from trackformer.errors import DataError

    torch.save({"model": {}, "args": argparse.Namespace(hook=Payload())}, tmp_path / "other.pth")
    with pytest.raises(DataError, match=r"refused: the file holds objects that would run code when unpickled"):
        load_checkpoint(tmp_path / "other.pth")
