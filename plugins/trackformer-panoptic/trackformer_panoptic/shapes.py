"""Generated panoptic scenes for CPU training, written in the COCO panoptic layout:

    root/<split>/images/<id>.png, root/<split>/panoptic/<id>.png, root/<split>/panoptic.json

Stuff: the image is split into two or three large regions (a wavy horizon, sometimes a vertical
band) of the classes sky (horizontal stripes), grass (speckle noise) and wall (checker), each one
segment. Things: circles, squares and triangles of class-specific colours (with jitter), drawn in
turn so that later ones overlap and occlude earlier ones; what is left visible of each is its
segment; remnants under `MIN_VISIBLE` pixels become VOID, as does a one-pixel seam at each stuff
boundary. Deterministic for a given spec; `manifest.json` (written last) marks a complete set.
"""
import json
from dataclasses import asdict
from pathlib import Path
from typing import Dict

import numpy as np
from PIL import Image

from trackformer.data.panoptic_format import segments_from_ids, write_panoptic

from .settings import SceneSpec

CATEGORIES = [
    {"id": 1, "name": "circle", "supercategory": "shape", "isthing": 1, "color": [220, 60, 60]},
    {"id": 2, "name": "square", "supercategory": "shape", "isthing": 1, "color": [60, 200, 60]},
    {"id": 3, "name": "triangle", "supercategory": "shape", "isthing": 1, "color": [70, 90, 230]},
    {"id": 4, "name": "sky", "supercategory": "stuff", "isthing": 0, "color": [150, 190, 230]},
    {"id": 5, "name": "grass", "supercategory": "stuff", "isthing": 0, "color": [110, 150, 70]},
    {"id": 6, "name": "wall", "supercategory": "stuff", "isthing": 0, "color": [170, 150, 130]},
]
MIN_VISIBLE = 12
SPLITS = ("train", "val", "test")


def _texture(rng, kind: int, shape, yy, xx) -> np.ndarray:
    """[H, W, 3] float texture of stuff category `kind`."""
    base = np.array(CATEGORIES[kind - 1]["color"], dtype=np.float32) + rng.normal(0, 8, 3)
    if kind == 4:  # sky: horizontal stripes
        period = rng.integers(4, 8)
        pattern = ((yy // period) % 2)[..., None] * 30.0
    elif kind == 5:  # grass: speckle
        pattern = rng.normal(0, 25, shape + (1,))
    else:  # wall: checker
        cell = rng.integers(5, 10)
        pattern = (((yy // cell) + (xx // cell)) % 2)[..., None] * 40.0 - 20
    return base + pattern


def _thing_mask(rng, kind: int, size: int, yy, xx, S: int) -> np.ndarray:
    cy, cx = rng.uniform(size / 2, S - size / 2, 2)
    r = size / 2
    if kind == 1:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
    if kind == 2:
        return (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
    # triangle, apex up: below the two slanted edges and above the base
    return (yy <= cy + r) & (2 * (xx - cx) <= (yy - (cy - r))) & (2 * (cx - xx) <= (yy - (cy - r)))


def scene(rng, spec: SceneSpec):
    """One scene: (image [S, S, 3] uint8, ids [S, S] int, {segment id: category id})."""
    S = spec.image_size
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    kinds = rng.permutation([4, 5, 6])
    horizon = S * rng.uniform(0.3, 0.7) + rng.uniform(2, 6) * np.sin(xx / rng.uniform(6, 14) + rng.uniform(0, 6))
    regions = [yy < horizon, yy >= horizon]
    if rng.random() < 0.5:  # a vertical band of the third class through the lower region
        x0 = rng.uniform(0, S * 0.6)
        band = (xx >= x0) & (xx < x0 + S * rng.uniform(0.25, 0.4)) & regions[1]
        regions = [regions[0], regions[1] & ~band, band]
    image = np.zeros((S, S, 3), np.float32)
    ids = np.zeros((S, S), np.int64)
    cats: Dict[int, int] = {}
    for k, region in enumerate(regions):
        image[region] = _texture(rng, int(kinds[k]), (S, S), yy, xx)[region]
        ids[region] = k + 1
        cats[k + 1] = int(kinds[k])
    seam = np.zeros((S, S), bool)
    seam[1:] |= ids[1:] != ids[:-1]
    seam[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    ids[seam] = 0
    for n in range(rng.integers(spec.min_things, spec.max_things + 1)):
        kind = int(rng.integers(1, 4))
        mask = _thing_mask(rng, kind, int(rng.integers(spec.thing_min_size, spec.thing_max_size + 1)), yy, xx, S)
        color = np.array(CATEGORIES[kind - 1]["color"], np.float32) + rng.normal(0, 15, 3)
        image[mask] = color + rng.normal(0, 6, (int(mask.sum()), 3))
        ids[mask] = 10 + n
        cats[10 + n] = kind
    for seg, cat in list(cats.items()):
        if cat <= 3 and (ids == seg).sum() < MIN_VISIBLE:
            ids[ids == seg] = 0
            del cats[seg]
    image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    return image, ids, cats


def generate(root, spec: SceneSpec) -> Path:
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    for split in SPLITS:
        pairs, images = [], []
        for i in range(getattr(spec, f"num_{split}")):
            image_id = {"train": 0, "val": 1_000_000, "test": 2_000_000}[split] + i
            image, ids, cats = scene(rng, spec)
            name = f"{image_id:08d}.png"
            (root / split / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / split / "images" / name)
            images.append({"id": image_id, "file_name": name, "height": spec.image_size, "width": spec.image_size})
            pairs.append(({"image_id": image_id, "file_name": name, "segments_info": segments_from_ids(ids, cats)},
                          ids))
        write_panoptic(root / split / "panoptic", root / split / "panoptic.json", pairs, CATEGORIES, images)
    return root


def ensure_scenes(root, spec: SceneSpec) -> Path:
    """Generate unless `root` already holds exactly this spec."""
    root = Path(root)
    manifest = root / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()) == asdict(spec):
        return root
    manifest.unlink(missing_ok=True)
    generate(root, spec)
    manifest.write_text(json.dumps(asdict(spec)))  # last: a partial set has none
    return root
