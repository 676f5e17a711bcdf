"""Deformable DETR learns: a small model from random weights fits four generated images in 150 steps
(the whole loop: focal matching, focal set loss, backward, AdamW), judged by pycocotools AP on those
images."""


def test_small_deformable_detr_fits_four_images(fit_four_images):
    first, last, ap_before, ap_after = fit_four_images("deformable_detr_synthetic")
    assert ap_before < 0.1
    assert last < first / 10
    assert ap_after >= 0.9
