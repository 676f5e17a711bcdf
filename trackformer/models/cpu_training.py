"""An opt-in module-surgery pass that makes float32 training faster on CPU (train setting
`cpu_training_pass`).

`optimize_for_cpu_training(model)` changes, in place, the classes of some modules to variants with
the same parameters and buffers, so state-dict keys, checkpoints and (with dropout off) outputs and
gradients stay exactly those of the plain model:

- nn.Dropout draws its mask four elements per 64-bit random draw (`trackformer.ops.dropout`; torch's
  CPU dropout draws one per element). The drop probability is p rounded to 1/65536.
- a module whose class names a `cpu_training_variant` becomes that subclass. DETR's attention does:
  on CPU, `scaled_dot_product_attention` with dropout leaves its fused kernel for explicit math that
  draws its mask element by element; the variant drops the explicit weights with the mask above.

Measured with bench/bench_detr.py (float32 DETR-R50 training step, batch 2 at 512x512, 2 threads on a
shared 2-core host): the pass takes 0.95-0.99x the plain model's time. Two rewrites the model code
used to carry were measured here too and deleted because they did not pay: frozen BatchNorm folded
into the convolution weights on the fly (1.17-1.49x the plain step, i.e. slower) and 1x1
convolutions as one hand-written matrix-product autograd function (the pass with it 0.99-1.07x,
without it 0.90-0.95x).
"""
import torch.nn as nn

from trackformer.ops.dropout import Dropout


def optimize_for_cpu_training(model: nn.Module) -> nn.Module:
    """Swap, in place, nn.Dropout and every module whose class has a `cpu_training_variant` for
    their CPU training variants; returns `model`. Parameters and state-dict keys are unchanged."""
    for module in model.modules():
        cls = type(module)
        if cls is nn.Dropout:
            module.__class__ = Dropout
        elif getattr(cls, "cpu_training_variant", None) not in (None, cls):
            module.__class__ = cls.cpu_training_variant
    return model
