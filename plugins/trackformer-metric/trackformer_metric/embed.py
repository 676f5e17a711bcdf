"""Embeddings as a service: load a trained metric model and map images to unit vectors.

    from trackformer_metric.embed import load_embedder
    embedder = load_embedder("runs/intrabatch_cub100")     # a run folder or a checkpoint inside one
    vectors = embedder(list_of_pil_images)                  # [N, D] float32 tensor, L2-normalized

The tracking plugin uses this for re-identification: crops of one object across frames land close
together. Images may be PIL images, HxWx3 uint8 arrays, or an already normalized [N, 3, H, W]
tensor. `square=True` (the default for arbitrary crops) resizes to a square instead of centre
cropping, so tall person boxes keep head and feet.
"""
import json
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from trackformer.errors import ConfigError, DataError


class Embedder:
    def __init__(self, model: torch.nn.Module, image_size: int = 224, resize: int = 256, device="cpu",
                 square: bool = True, batch_size: int = 64):
        from torchvision import transforms as T

        from trackformer.data.transforms import IMAGENET_MEAN, IMAGENET_STD

        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch_size = batch_size
        geometry = [T.Resize((image_size, image_size))] if square else [T.Resize(resize), T.CenterCrop(image_size)]
        self.transform = T.Compose([*geometry, T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    @property
    def dim(self) -> int:
        return self.model.embedding.out_features

    def _tensor(self, image) -> torch.Tensor:
        from PIL import Image

        if isinstance(image, np.ndarray):
            image = Image.fromarray(image.astype(np.uint8))
        return self.transform(image.convert("RGB"))

    @torch.no_grad()
    def __call__(self, images: Union[torch.Tensor, Sequence]) -> torch.Tensor:
        """[N, D] embeddings on the CPU; an empty input gives [0, D]."""
        if isinstance(images, torch.Tensor):
            batches = [images[i:i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        else:
            images = list(images)
            batches = [torch.stack([self._tensor(im) for im in images[i:i + self.batch_size]])
                       for i in range(0, len(images), self.batch_size)]
        out = [self.model.embed(b.to(self.device)).float().cpu() for b in batches]
        return torch.cat(out) if out else torch.zeros(0, self.dim)


def _find(path: Path):
    """(run folder, checkpoint file) of a run folder or of a checkpoint inside one."""
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path, path / name
        raise DataError(path, "no best.pt or last.pt in this run folder")
    if path.is_file():
        return path.parent, path
    raise DataError(path, "no such run folder or checkpoint")


def load_embedder(path=None, device: str = "cpu", config: Optional[str] = None, square: bool = True,
                  overrides: Sequence[str] = ()) -> Embedder:
    """An `Embedder` for the model trained in run folder `path` (its config.yaml, data_info.json and
    best.pt, else last.pt), or for checkpoint `path` with `config` (a name or a file; default: its
    folder's config.yaml), or, without `path`, for the model `config` builds (its `model.weights`, else
    ImageNet features: what the tracker's appearance re-identification may use untrained)."""
    from trackformer import build, load_config
    from trackformer.checkpoint import load_model_weights

    if path is None:
        if not config:
            raise ConfigError("config", "load_embedder needs a run folder, a checkpoint or a config")
        run_dir, ckpt = None, None
    else:
        run_dir, ckpt = _find(Path(path).expanduser())
        if not config and not (run_dir / "config.yaml").is_file():
            raise DataError(run_dir / "config.yaml",
                            "config not found; pass config=... for a checkpoint outside its run folder")
    # a checkpoint holds every weight: skip the ImageNet file and any model.weights in the config
    skip = ["model.backbone.weights=null", "model.weights=null"] if ckpt is not None else []
    cfg = load_config(config or run_dir / "config.yaml", [*skip, *overrides])
    if cfg.model is None or cfg.model.name != "intra_batch":
        raise ConfigError("model.name", "load_embedder needs an intra_batch model")
    info_file = run_dir / "data_info.json" if run_dir is not None else None
    data_info = json.loads(info_file.read_text()) if info_file is not None and info_file.is_file() else {}
    if ckpt is None:
        from trackformer import build_model

        model = build_model(cfg, data_info={"num_classes": 1, **data_info})  # the head is not used
    else:
        model = build("architectures", cfg.model, data_info=data_info)
        load_model_weights(model, ckpt, strict=True)
    image_size, resize = 224, 256
    if cfg.data is not None:
        image_size, resize = cfg.data.get("image_size", 224), cfg.data.get("resize", 256)
    return Embedder(model, image_size, resize, device, square=square)
