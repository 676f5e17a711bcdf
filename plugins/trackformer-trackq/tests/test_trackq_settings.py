"""TrackFormer's settings reuse DETR's, the architecture names the matcher and loss it works with,
and a forward leaves no per-call state on the module."""
import pytest
import torch

import trackformer
from trackformer.errors import ConfigError
from trackformer_detr.settings import DETRConfig
from trackformer_trackq.settings import TrackFormerConfig

SYNTHETIC = "trackformer_synthetic"


def test_trackformer_settings_extend_detr_settings():
    assert issubclass(TrackFormerConfig, DETRConfig)
    detr_fields = DETRConfig.__dataclass_fields__
    for name, f in detr_fields.items():
        assert TrackFormerConfig.__dataclass_fields__[name].default == f.default, name


@pytest.mark.parametrize("override, message", [
    ("matcher.name=hungarian", "matcher.name: 'hungarian' does not work with model.name 'trackformer', "
                               "which takes matcher.name: track_hungarian"),
    ("loss.name=detr_set_criterion", "loss.name: 'detr_set_criterion' does not work with model.name "
                                     "'trackformer', which takes loss.name: trackformer_criterion"),
    ("model.fn_prob=1.5", "model.fn_prob: must be in [0, 1], got 1.5"),
    ("model.prev_matcher.cost_bbox=x", "model.prev_matcher.cost_bbox: Value 'x' of type 'str' could not be converted to Float"),
    ("data.crop=2", "data.crop: must be in [0, 1], got 2.0"),
    ("data.crop_min=0", "data.crop_min: must be in (0, 1], got 0.0"),
    ("data.synthetic.seq_lenght=5", "data.synthetic.seq_lenght: Key 'seq_lenght' not in 'SyntheticSplitsConfig'"),
])
def test_config_mistakes_name_their_keys(override, message):
    with pytest.raises(ConfigError) as error:
        trackformer.load_config(SYNTHETIC, [override])
    assert str(error.value).startswith(message)


def test_forward_keeps_no_state_on_the_module(tmp_path):
    from trackformer.plugins import load_plugins

    cfg = trackformer.load_config(SYNTHETIC, ["model.num_classes=1", "model.fn_prob=0", f"data.root={tmp_path}"])
    model = trackformer.build_model(cfg).train()
    assert model.hook is load_plugins().hook
    before = set(vars(model))
    target = {"boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]]), "labels": torch.tensor([0]),
              "track_ids": torch.tensor([7])}
    pair = dict(target, prev_image=torch.randn(3, 96, 96), prev_target=dict(target))
    out = model([torch.randn(3, 96, 96)], [pair])
    assert out["num_track_slots"] >= 1 and out["aux_outputs"][0]["num_track_slots"] == out["num_track_slots"]
    plain = model([torch.randn(3, 96, 96)])
    assert plain["num_track_slots"] == 0 and plain["pred_logits"].shape[1] == cfg.model.num_queries
    assert set(vars(model)) == before
