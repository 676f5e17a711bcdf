"""Panoptic and instance post-processing: an image's output does not depend on the batch it came
in (padding is cropped before resizing; DETR's stretching is shown to differ), the stuff merge, the
small-segment rule, ids 1..n, nothing kept -> all VOID."""
import torch
import torch.nn.functional as F

from trackformer_panoptic.postprocess import instance_masks, panoptic, panoptic_single

THINGS = {0, 1}


def is_thing(label):
    return label in THINGS


def _field(h4, w4, Q, seed):
    """Mask logits that vary smoothly over the image: [Q, h4, w4]."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(Q, 2, generator=g) * torch.tensor([h4, w4])
    yy, xx = torch.meshgrid(torch.arange(h4).float(), torch.arange(w4).float(), indexing="ij")
    return 3 - ((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2).sqrt() / 3


def test_output_independent_of_batch_composition():
    Q, C = 6, 4
    logits = torch.full((Q, C + 1), -5.0)
    logits[torch.arange(Q), torch.tensor([0, 1, 2, 3, 0, 1])] = 5.0  # every query kept, confident
    small = _field(16, 12, Q, seed=0)  # image A: 64 x 48 input pixels (stride 4)
    orig = torch.tensor([[128, 96]])
    alone = panoptic({"pred_logits": logits[None], "pred_masks": small[None]},
                     torch.zeros(1, 64, 48, dtype=torch.bool), orig, is_thing, 0.5)[0]
    # the same image in a batch with a larger one: its masks padded with other values
    padded = torch.randn(Q, 24, 40) * 5
    padded[:, :16, :12] = small
    mask = torch.ones(2, 96, 160, dtype=torch.bool)
    mask[0, :64, :48] = False
    mask[1] = False
    batch = panoptic({"pred_logits": torch.stack([logits, logits]), "pred_masks": torch.stack([padded, padded])},
                     mask, torch.cat([orig, torch.tensor([[96, 160]])]), is_thing, 0.5)
    assert len(alone["segments_info"]) >= 4
    assert torch.equal(batch[0]["ids"], alone["ids"]) and batch[0]["segments_info"] == alone["segments_info"]
    # DETR's way (resize the padded map onto the unpadded size) stretches the masks: not the same
    stretched = F.interpolate(padded[:, None], size=(64, 48), mode="bilinear")[:, 0]
    official = F.interpolate(stretched.argmax(0)[None, None].float(), size=(128, 96), mode="nearest-exact")[0, 0]
    assert (official.long() + 1 != alone["ids"]).float().mean() > 0.2


def test_instance_masks_independent_of_batch_composition():
    Q = 3
    small = _field(8, 8, Q, seed=1)
    padded = torch.randn(Q, 16, 12) * 5
    padded[:, :8, :8] = small
    mask = torch.ones(2, 64, 48, dtype=torch.bool)
    mask[0, :32, :32] = False
    mask[1] = False
    alone = instance_masks([{}], small[None], torch.zeros(1, 32, 32, dtype=torch.bool), torch.tensor([[50, 40]]))
    batch = instance_masks([{}, {}], torch.stack([padded, padded]), mask, torch.tensor([[50, 40], [64, 48]]))
    assert alone[0]["masks"].shape == (Q, 1, 50, 40) and alone[0]["masks"].any()
    assert torch.equal(alone[0]["masks"], batch[0]["masks"])


def test_stuff_merge_small_segments_and_ids():
    C = 4
    masks = torch.full((4, 8, 8), -10.0)
    masks[0, :, :4] = 5      # stuff, left half
    masks[1, :, 4:] = 5      # stuff, right half
    masks[2, :4, :4] = 6     # thing, a quarter
    masks[3, 7, 7] = 9       # thing, about one pixel: dropped, then the argmax is redone
    logits = torch.full((4, C + 1), -5.0)
    logits[torch.arange(4), torch.tensor([2, 3, 0, 1])] = 5.0
    out = panoptic_single(logits, masks, (32, 32), (32, 32), (8, 8), is_thing, 0.85)
    assert [s["label"] for s in out["segments_info"]] == [2, 3, 0]
    assert [s["id"] for s in out["segments_info"]] == [1, 2, 3]
    assert [s["isthing"] for s in out["segments_info"]] == [False, False, True]
    assert sum(s["area"] for s in out["segments_info"]) == 64 and out["ids"].min() >= 1
    assert out["ids"][7, 7] == 2  # the dropped query's pixel went to the right half's stuff
    # the same stuff class twice: the second query merges into the first, keeps no pixels and
    # is dropped (DETR's rule); the first then covers both halves
    logits[1] = logits[0]
    out = panoptic_single(logits, masks, (32, 32), (32, 32), (8, 8), is_thing, 0.85)
    assert [s["label"] for s in out["segments_info"]] == [2, 0]
    assert out["segments_info"][0]["area"] == 64 - out["segments_info"][1]["area"] > 32


def test_nothing_kept_is_all_void():
    logits = torch.zeros(3, 5)
    logits[:, -1] = 10.0  # no-object everywhere
    out = panoptic_single(logits, torch.randn(3, 4, 4), (16, 16), (16, 16), (20, 30), is_thing)
    assert out["segments_info"] == [] and out["ids"].shape == (20, 30) and not out["ids"].any()
