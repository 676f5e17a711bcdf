"""`trackformer detect CONFIG [key=value ...] --input IMAGE_OR_DIR [--output DIR] [--threshold 0.7]
[--precision fp32|bf16] [--no-attention]`, e.g. `trackformer detect detr_r50_coco
model.weights=detr-r50-e632da11.pth --input images/`

The command's own options are flags; `key=value` is only ever a config override. The model runs as
`optimize_for_inference` makes it (frozen BatchNorm folded, channels-last; the outputs of the plain
model up to float rounding); `--precision bf16` runs it in bfloat16.

Writes to `--output` (default `<output_dir>/detect`):
  results.json       COCO-format results (image_id, category_id, bbox xywh, score) of detections
                     scoring >= threshold; images.json maps file names to the image ids used
  boxes/<name>.png   the image with boxes, class names and scores drawn
  attention/<name>_<k>.png   per detection k: the last decoder layer's cross-attention over the
                     image (head average), the DETR paper's figure, with the box outlined
The label -> category mapping and names come from the run's data_info.json beside the weights,
else from the config's data set. Import-light at module level: torch is loaded in `main`.
"""
import json
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
FLAGS = {"input": "--input", "output": "--output", "threshold": "--threshold", "precision": "--precision"}


def add_arguments(parser):
    parser.add_argument("config", help="the detector's config: a shipped config's name or a YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted config overrides, e.g. model.weights=PATH")
    parser.add_argument("-i", "--input", metavar="IMAGE_OR_DIR", help="an image or a folder of images (required)")
    parser.add_argument("-o", "--output", metavar="DIR", help="output folder (default: <output_dir>/detect)")
    parser.add_argument("--threshold", type=float, default=0.7, help="keep detections scoring >= this (0.7)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="inference precision")
    parser.add_argument("--no-attention", action="store_true", help="skip the attention pictures")


def _image_paths(source: Path):
    from trackformer.errors import ConfigError

    if source.is_file():
        return [source]
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if paths:
            return paths
        raise ConfigError("--input", f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {source}")
    raise ConfigError("--input", f"no such file or folder: {source}")


def _data_info(cfg):
    """The mapping saved with the run that produced the weights, else the config's data."""
    weights = cfg.model.get("weights")
    if weights and (Path(weights).parent / "data_info.json").is_file():
        return json.loads((Path(weights).parent / "data_info.json").read_text())
    if cfg.data is not None:
        from trackformer.api import build_dataset

        try:
            return dict(getattr(build_dataset(cfg, "train"), "info", {}) or {})
        except Exception:  # the data need not exist where one only runs inference
            pass
    return {}


def _eval_transform(cfg):
    from trackformer.data import transforms as T

    size, max_size = 800, 1333
    if cfg.data is not None:
        size, max_size = cfg.data.get("val_size", size), cfg.data.get("max_size", max_size)
    return T.Compose([T.RandomResize([size], max_size), T.ToTensor(), T.Normalize()])


def _font(size):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def draw_detections(image, det, names):
    """The image with each box, its class name and its score."""
    from PIL import ImageDraw

    image = image.copy()
    draw = ImageDraw.Draw(image)
    font = _font(max(10, image.size[1] // 40))
    palette = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
               (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)]
    for box, label, score in zip(det["boxes"].tolist(), det["labels"].tolist(), det["scores"].tolist()):
        color = palette[label % len(palette)]
        draw.rectangle(box, outline=color, width=max(2, image.size[0] // 300))
        text = f"{names(label)} {score:.2f}"
        x0, y0 = box[0], max(0, box[1] - font.size - 4)
        tb = draw.textbbox((x0, y0), text, font=font)
        draw.rectangle(tb, fill=color)
        draw.text((x0, y0), text, fill=(255, 255, 255), font=font)
    return image


def attention_picture(image, attention, box, title_color=(255, 255, 255)):
    """Overlay an attention map [h, w] (upsampled to the image) as a heat map, box outlined."""
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    a = attention - attention.min()
    a = a / max(float(a.max()), 1e-12)
    heat = Image.fromarray((a * 255).astype(np.uint8)).resize(image.size, Image.BILINEAR)
    colored = (colormaps["inferno"](np.asarray(heat) / 255.0)[..., :3] * 255).astype(np.uint8)
    blended = Image.blend(image.convert("RGB"), Image.fromarray(colored), 0.6)
    ImageDraw.Draw(blended).rectangle(box, outline=title_color, width=2)
    return blended


def main(args) -> int:
    import torch
    from PIL import Image

    from trackformer import build_model, load_config
    from trackformer.cli import reject_flag_spellings
    from trackformer.errors import ConfigError
    from trackformer.eval.coco import to_coco_results
    from trackformer.utils import progress, resolve_device

    from .inference import optimize_for_inference, unwrap

    reject_flag_spellings(args.overrides, FLAGS)
    if args.input is None:
        raise ConfigError("--input", "give the image or folder of images to run on")
    threshold, precision = args.threshold, args.precision
    cfg = load_config(args.config, args.overrides)
    paths = _image_paths(Path(args.input))
    out_dir = Path(args.output or Path(cfg.output_dir) / "detect")
    (out_dir / "boxes").mkdir(parents=True, exist_ok=True)
    info = _data_info(cfg)
    device = resolve_device(cfg.device)
    model = optimize_for_inference(build_model(cfg, data_info=info).to(device),
                                   dtype=torch.bfloat16 if precision == "bf16" else None)
    label_to_cat = {int(k): int(v) for k, v in (info.get("label_to_category") or {}).items()}
    cat_names = {int(k): v for k, v in (info.get("category_names") or {}).items()}

    def names(label):
        cat = label_to_cat.get(label, label)
        return cat_names.get(cat, str(cat))

    # the last decoder layer's cross-attention, and the feature map size to unflatten it
    detr = unwrap(model)
    cross = detr.transformer.decoder.layers[-1].multihead_attn
    cross.need_weights = not args.no_attention
    feature_size = {}
    hook = detr.input_proj.register_forward_hook(
        lambda m, i, o: feature_size.__setitem__("hw", tuple(o.shape[-2:])))
    transform = _eval_transform(cfg)
    predictions, image_ids = {}, {}
    try:
        for index, path in enumerate(progress(paths, desc="detect")):
            try:
                image = Image.open(path).convert("RGB")
            except OSError as e:
                from trackformer.errors import DataError

                raise DataError(path, f"cannot read image: {e}") from None
            image_id = int(path.stem) if path.stem.isdigit() else index + 1
            image_ids[path.name] = image_id
            tensor, _ = transform(image, {})
            with torch.no_grad():
                det = model.predict([tensor.to(device)],
                                    target_sizes=torch.tensor([[image.size[1], image.size[0]]]))[0]
            keep = det["scores"] >= threshold
            det = {k: v[keep].cpu() for k, v in det.items()}
            predictions[image_id] = det
            draw_detections(image, det, names).save(out_dir / "boxes" / f"{path.stem}.png")
            if cross.need_weights and keep.any():
                (out_dir / "attention").mkdir(exist_ok=True)
                h, w = feature_size["hw"]
                maps = cross.last_weights[0][keep.to(cross.last_weights.device)]  # [K, h*w]
                for k, (att, box) in enumerate(zip(maps, det["boxes"].tolist())):
                    picture = attention_picture(image, att.float().view(h, w).cpu().numpy(), box)
                    picture.save(out_dir / "attention" / f"{path.stem}_{k}.png")
    finally:
        hook.remove()
        cross.need_weights = False
    results = to_coco_results(predictions, label_to_cat or None)
    (out_dir / "results.json").write_text(json.dumps(results))
    (out_dir / "images.json").write_text(json.dumps(image_ids, indent=1))
    print(f"{len(results)} detections (score >= {threshold}) on {len(paths)} images -> {out_dir}")
    return 0
