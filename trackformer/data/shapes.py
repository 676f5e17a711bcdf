"""A deterministic synthetic detection set: coloured circles, squares and triangles on noisy
backgrounds, written in COCO format so the ordinary COCO loader and evaluator read it.

The same (seed, sizes, counts) always produce the same files (numpy's PCG64 per image), and a
manifest records them: `ensure_shapes` regenerates only when the parameters change.

numpy and Pillow are imported where images are drawn: `ShapesSpec` is also the builtin `shapes`
data set's config schema, which every `trackformer` start loads.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Tuple

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image, ImageDraw

CATEGORIES = [{"id": 1, "name": "circle", "supercategory": "shape"},
              {"id": 2, "name": "square", "supercategory": "shape"},
              {"id": 3, "name": "triangle", "supercategory": "shape"}]
SPLITS = ("train", "val", "test")


@dataclass
class ShapesSpec:
    num_train: int = 2000
    num_val: int = 200
    num_test: int = 200
    image_size: int = 128
    min_objects: int = 0
    max_objects: int = 3
    object_min_size: int = 16  # side of a shape, pixels
    object_max_size: int = 48
    seed: int = 0


def _iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _draw_shape(draw: ImageDraw.ImageDraw, kind: int, x: int, y: int, s: int, color) -> List[float]:
    """Draw shape `kind` in the s x s square at (x, y); return its tight [x, y, w, h]."""
    if kind == 1:
        draw.ellipse([x, y, x + s - 1, y + s - 1], fill=color)
        return [x, y, s, s]
    if kind == 2:
        draw.rectangle([x, y, x + s - 1, y + s - 1], fill=color)
        return [x, y, s, s]
    h = max(2, int(round(s * 0.87)))  # equilateral
    draw.polygon([(x, y + h - 1), (x + s - 1, y + h - 1), (x + (s - 1) / 2, y)], fill=color)
    return [x, y, s, h]


def render_image(rng: np.random.Generator, spec: ShapesSpec) -> Tuple[Image.Image, List[Tuple[int, List[float]]]]:
    import numpy as np
    from PIL import Image, ImageDraw

    n = spec.image_size
    base = rng.integers(0, 256, size=3)
    noise = rng.normal(0, 12, size=(n, n, 3))
    image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    objects: List[Tuple[int, List[float]]] = []
    for _ in range(int(rng.integers(spec.min_objects, spec.max_objects + 1))):
        for _attempt in range(20):  # rejection sampling: keep every object mostly visible
            s = int(rng.integers(spec.object_min_size, spec.object_max_size + 1))
            x, y = (int(v) for v in rng.integers(0, n - s + 1, size=2))
            if all(_iou([x, y, s, s], b) < 0.05 for _, b in objects):
                break
        else:
            continue
        color = rng.integers(0, 256, size=3)
        while np.abs(color.astype(int) - base).sum() < 150:  # contrast with the background
            color = rng.integers(0, 256, size=3)
        kind = int(rng.integers(1, 4))
        objects.append((kind, _draw_shape(draw, kind, x, y, s, tuple(int(c) for c in color))))
    return image, objects


def generate(root, spec: ShapesSpec) -> Dict[str, Path]:
    """Write root/<split>/<id>.png and root/annotations/<split>.json; return the JSON paths."""
    import numpy as np

    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    counts = {"train": spec.num_train, "val": spec.num_val, "test": spec.num_test}
    paths = {}
    for split_index, split in enumerate(SPLITS):
        (root / split).mkdir(exist_ok=True)
        images, annotations = [], []
        for i in range(counts[split]):
            # one independent stream per image: the data do not depend on the other splits' sizes
            rng = np.random.default_rng([spec.seed, split_index, i])
            image, objects = render_image(rng, spec)
            image_id = i + 1
            name = f"{image_id:06d}.png"
            image.save(root / split / name)
            images.append({"id": image_id, "file_name": name, "width": spec.image_size,
                           "height": spec.image_size})
            for kind, bbox in objects:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                    "category_id": kind, "bbox": bbox, "area": bbox[2] * bbox[3],
                                    "iscrowd": 0})
        paths[split] = root / "annotations" / f"{split}.json"
        with open(paths[split], "w") as f:
            json.dump({"info": {"description": "trackformer synthetic shapes", **asdict(spec)},
                       "images": images, "annotations": annotations, "categories": CATEGORIES}, f)
    return paths


def ensure_shapes(root, spec: ShapesSpec) -> Dict[str, Path]:
    """Generate unless `root` already holds exactly this spec (its manifest)."""
    root = Path(root)
    manifest = root / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()) == asdict(spec):
        return {s: root / "annotations" / f"{s}.json" for s in SPLITS}
    if manifest.is_file():
        manifest.unlink()
    paths = generate(root, spec)
    manifest.write_text(json.dumps(asdict(spec)))  # written last: a partial set has none
    return paths
