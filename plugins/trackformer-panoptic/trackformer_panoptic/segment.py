"""`trackformer segment CONFIG [key=value ...] --input IMAGE_OR_DIR [--output DIR] [--threshold T]`,
e.g. `trackformer segment detr_panoptic_synthetic model.weights=runs/detr_panoptic_synthetic/best.pt
--input images/`

Writes to `--output` (default `<output_dir>/segment`), in the COCO panoptic layout:
  panoptic/<name>.png   segment ids as R + 256·G + 256²·B (0 = VOID)
  panoptic.json         annotations (image_id, file_name, segments_info with category_id, area,
                        bbox, iscrowd 0, isthing, score), categories
  overlay/<name>.png    the image with each segment tinted in its own colour, outlined, and each
                        thing labelled with its class name and score at its centre
Labels map to category ids and names through the run's data_info.json beside the weights, else the
config's data. Import-light at module level: torch is loaded in `main`.
"""
from pathlib import Path

FLAGS = {"input": "--input", "output": "--output", "threshold": "--threshold"}


def add_arguments(parser):
    parser.add_argument("config", help="the panoptic model's config: a shipped config's name or a YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted config overrides, e.g. model.weights=PATH")
    parser.add_argument("-i", "--input", metavar="IMAGE_OR_DIR", help="an image or a folder of images (required)")
    parser.add_argument("-o", "--output", metavar="DIR", help="output folder (default: <output_dir>/segment)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="keep queries whose best class scores above this (default: model.threshold)")


def segment_colors(n: int, seed: int = 0):
    """n distinct-looking RGB colours."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [tuple(int(c) for c in rng.integers(40, 256, 3)) for _ in range(n)]


def draw_overlay(image, ids, segments, name_of, min_side: int = 384):
    """The image with segments tinted (alpha 0.55), their borders dark, thing labels at centres;
    small images are first enlarged to `min_side` pixels on the short side (labels stay legible)."""
    import numpy as np
    from PIL import Image, ImageDraw

    from trackformer_detr.detect import _font

    scale = max(1, -(-min_side // min(image.size)))
    if scale > 1:
        image = image.resize((image.size[0] * scale, image.size[1] * scale), Image.BILINEAR)
        ids = np.repeat(np.repeat(ids, scale, 0), scale, 1)
    rgb = np.asarray(image.convert("RGB")).astype(np.float32)
    tint = rgb.copy()
    colors = segment_colors(len(segments) + 1)
    for s, color in zip(segments, colors):
        tint[ids == s["id"]] = color
    blended = 0.45 * rgb + 0.55 * tint
    border = np.zeros(ids.shape, bool)
    border[1:] |= ids[1:] != ids[:-1]
    border[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    blended[border] = (20, 20, 20)
    out = Image.fromarray(blended.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    font = _font(max(10, min(out.size) // 28))
    for s, color in zip(segments, colors):
        if not s["isthing"]:
            continue
        ys, xs = np.nonzero(ids == s["id"])
        text = f"{name_of(s['label'])} {s['score']:.2f}"
        x, y = int(xs.mean()), int(ys.mean())
        box = draw.textbbox((x, y), text, font=font, anchor="mm")
        draw.rectangle(box, fill=color)
        draw.text((x, y), text, fill=(0, 0, 0), font=font, anchor="mm")
    return out


def main(args) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from trackformer import build_model, load_config
    from trackformer.cli import reject_flag_spellings
    from trackformer.data.mask_transforms import RandomResize
    from trackformer.data import transforms as T
    from trackformer.data.panoptic_format import write_panoptic
    from trackformer.errors import ConfigError, DataError
    from trackformer.utils import progress, resolve_device
    from trackformer_detr.detect import _data_info, _image_paths

    from .evaluator import to_coco_segments

    reject_flag_spellings(args.overrides, FLAGS)
    if args.input is None:
        raise ConfigError("--input", "give the image or folder of images to run on")
    cfg = load_config(args.config, args.overrides)
    paths = _image_paths(Path(args.input))
    out_dir = Path(args.output or Path(cfg.output_dir) / "segment")
    info = _data_info(cfg)
    device = resolve_device(cfg.device)
    model = build_model(cfg, data_info=info).to(device).eval()
    if not hasattr(model, "predict_panoptic"):
        raise ConfigError("model.name", f"{cfg.model.name} has no panoptic output (use detr_panoptic)")
    if args.threshold is not None:
        model.threshold = args.threshold
    label_to_cat = {int(k): int(v) for k, v in (info.get("label_to_category") or {}).items()}
    cat_names = {int(k): v for k, v in (info.get("category_names") or {}).items()}
    size = cfg.data.get("val_size", 800) if cfg.data is not None else 800
    max_size = cfg.data.get("max_size", 1333) if cfg.data is not None else 1333
    transform = T.Compose([RandomResize([size], max_size), T.ToTensor(), T.Normalize()])

    def name_of(label):
        cat = label_to_cat.get(label, label)
        return cat_names.get(cat, str(cat))

    written, images = [], []
    (out_dir / "overlay").mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(progress(paths, desc="segment")):
        try:
            image = Image.open(path).convert("RGB")
        except OSError as e:
            raise DataError(path, f"cannot read image: {e}") from None
        image_id = int(path.stem) if path.stem.isdigit() else index + 1
        tensor, _ = transform(image, {})
        with torch.no_grad():
            result = model.predict_panoptic([tensor.to(device)],
                                            target_sizes=torch.tensor([[image.size[1], image.size[0]]]))[0]
        ids, segments = to_coco_segments(result, label_to_cat)
        extra = {s["id"]: s for s in result["segments_info"]}
        for s in segments:
            s.update(isthing=int(extra[s["id"]]["isthing"]), score=round(extra[s["id"]]["score"], 4))
        written.append(({"image_id": image_id, "file_name": f"{path.stem}.png", "segments_info": segments}, ids))
        images.append({"id": image_id, "file_name": path.name, "height": image.size[1], "width": image.size[0]})
        draw_overlay(image, np.asarray(ids), result["segments_info"], name_of).save(out_dir / "overlay" / f"{path.stem}.png")
    categories = info.get("categories") or [{"id": c, "name": n, "isthing": 1} for c, n in cat_names.items()]
    write_panoptic(out_dir / "panoptic", out_dir / "panoptic.json", written, categories, images)
    count = sum(len(a["segments_info"]) for a, _ in written)
    print(f"{count} segments on {len(paths)} images -> {out_dir}")
    return 0
