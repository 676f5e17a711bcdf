"""DETR learns: a small model from random weights fits four generated images in 150 steps (the
whole loop: matching, set loss, backward, AdamW), judged by pycocotools AP on those images."""


def test_small_detr_fits_four_images(fit_four_images):
    first, last, ap_before, ap_after = fit_four_images("detr_synthetic")
    assert ap_before < 0.1
    assert last < first / 10
    assert ap_after >= 0.9
