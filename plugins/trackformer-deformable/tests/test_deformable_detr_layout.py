"""Deformable DETR's transformer, heads and input projections have exactly the official key lists, order
and shapes of the four COCO variants (`../shared/reference/deformable_detr_r50*_state_dict.txt`, written
from the official code); the backbone's keys are the backbone's and are left out here."""
import re
from pathlib import Path

import pytest
import torch

from trackformer_deformable.deformable_detr import build_deformable_detr

REFERENCE = Path(__file__).resolve().parents[4] / "shared" / "reference"  # ../shared beside the checkout
VARIANTS = {
    "": dict(),
    "_single_scale": dict(backbone_channels=(2048,), num_feature_levels=1),
    "_refine": dict(with_box_refine=True),
    "_refine_two_stage": dict(with_box_refine=True, two_stage=True),
}


def official_layout(name):
    path = REFERENCE / f"deformable_detr_r50{name}_state_dict.txt"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    rows = [line.split("\t") for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return [(k, tuple(int(n) for n in s.strip("()").split(",") if n.strip())) for k, s in rows]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_keys_order_and_shapes_equal_the_official_layout(name):
    expected = [(k, s) for k, s in official_layout(name) if not k.startswith("backbone.")]
    model = build_deformable_detr(num_classes=91, **VARIANTS[name])
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == expected


def test_shared_heads_without_refinement_and_own_heads_with_it():
    plain = build_deformable_detr(num_classes=5, dec_layers=3, enc_layers=1)
    assert plain.class_embed[0] is plain.class_embed[2] and plain.transformer.decoder.bbox_embed is None
    refine = build_deformable_detr(num_classes=5, dec_layers=3, enc_layers=1, with_box_refine=True)
    assert refine.class_embed[0] is not refine.class_embed[2]
    assert refine.transformer.decoder.bbox_embed is refine.bbox_embed
    # official init: focal prior on the class bias, first box head's size bias -2, last box layers zero
    assert torch.allclose(refine.class_embed[1].bias, torch.full((5,), -4.59512), atol=1e-5)
    assert torch.equal(refine.bbox_embed[0].layers[-1].bias, torch.tensor([0.0, 0.0, -2.0, -2.0]))
    assert not refine.bbox_embed[1].layers[-1].bias.any() and not refine.bbox_embed[1].layers[-1].weight.any()
    with pytest.raises(ValueError, match=r"^two_stage needs with_box_refine \(the proposal head is the decoder's "
                                         r"last box head\)$"):
        build_deformable_detr(num_classes=5, two_stage=True)


CONFIGS = {"": "deformable_detr_r50_coco", "_single_scale": "deformable_detr_r50_single_scale_coco",
           "_refine": "deformable_detr_r50_refine_coco", "_refine_two_stage": "deformable_detr_r50_two_stage_coco"}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_configs_build_the_whole_official_state_dict_backbone_included(name):
    import trackformer

    expected = official_layout(name)
    model = trackformer.build_model(trackformer.load_config(CONFIGS[name]))
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == expected
    assert len(expected) == {"": 561, "_single_scale": 549, "_refine": 597, "_refine_two_stage": 630}[name]


def official_checkpoint(name, generator):
    """Random tensors under the official keys and shapes; the official files store a shared module once
    per alias, so aliases hold the same tensor (heads shared without refinement, the decoder's copies)."""
    layout = official_layout(name)
    tensors = {}
    for key, shape in layout:
        source = re.sub(r"^transformer\.decoder\.(class_embed|bbox_embed)\.", r"\1.", key)
        if name in ("", "_single_scale"):
            source = re.sub(r"^(class_embed|bbox_embed)\.\d+\.", r"\1.0.", source)
        if source not in tensors:
            tensors[source] = torch.randn(shape, generator=generator)
        tensors[key] = tensors[source]
    return {k: tensors[k] for k, _ in layout}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_official_layout_checkpoint_loads_strictly_through_model_weights(name, tmp_path):
    import trackformer

    state = official_checkpoint(name, torch.Generator().manual_seed(0))
    torch.save({"model": state}, tmp_path / "official.pth")
    model = trackformer.build_model(trackformer.load_config(CONFIGS[name], [f"model.weights={tmp_path / 'official.pth'}"]))
    loaded = model.state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_a_checkpoint_missing_a_key_is_refused_in_one_line(tmp_path):
    import trackformer
    from trackformer.errors import DataError

    state = official_checkpoint("_refine", torch.Generator().manual_seed(0))
    del state["transformer.level_embed"]
    torch.save({"model": state}, tmp_path / "official.pth")
    cfg = trackformer.load_config(CONFIGS["_refine"], [f"model.weights={tmp_path / 'official.pth'}"])
    with pytest.raises(DataError, match=r"weights do not fit the model: .*level_embed.* \(use "
                                        r"model.weights_strict=false to fine-tune\)$"):
        trackformer.build_model(cfg)
