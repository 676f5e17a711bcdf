"""Deterministic synthetic multi-object sequences in MOTChallenge layout.

Coloured rectangles move with a noisy constant velocity over a smooth textured background; they enter
through the image borders, leave through them, and pass in front of / behind each other (a depth order
per object). Each sequence directory holds `img1/000001.jpg...`, `gt/gt.txt` (with the visible fraction
of each box in the visibility column), `det/det.txt` (noisy public detections with misses and false
positives) and `seqinfo.ini`, so the same readers and evaluators as for MOT17 apply.
"""
import colorsys
import configparser
import json
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from PIL import Image

from .settings import SyntheticConfig, SyntheticSplitsConfig


class _Object:
    def __init__(self, oid, cx, cy, w, h, vx, vy, depth, color):
        self.id, self.cx, self.cy, self.w, self.h = oid, cx, cy, w, h
        self.vx, self.vy, self.v0 = vx, vy, (vx, vy)
        self.depth, self.color = depth, color

    def xyxy(self):
        return (self.cx - self.w / 2, self.cy - self.h / 2, self.cx + self.w / 2, self.cy + self.h / 2)


def _background(rng, w, h):
    """A smooth low-frequency grey texture, so the detector cannot rely on a flat background."""
    coarse = rng.uniform(70, 150, size=(h // 16 + 2, w // 16 + 2)).astype(np.float32)
    img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.float32)
    tint = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    return np.clip(img[..., None] * tint, 0, 255)  # [H, W, 3]


def _colour(rng):
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.6, 1.0), rng.uniform(0.75, 1.0))
    return np.array([r, g, b], dtype=np.float32) * 255


def _spawn(rng, oid, cfg, at_border):
    w = rng.uniform(cfg.min_size, cfg.max_size)
    h = w * rng.uniform(0.7, 1.8)
    speed = cfg.speed * rng.uniform(0.5, 1.2)
    if at_border:
        side = rng.integers(4)
        # start just outside the border and head inwards, with a random lateral component
        if side == 0:
            cx, cy, angle = -w / 2 + 1, rng.uniform(0.15, 0.85) * cfg.height, rng.uniform(-0.7, 0.7)
        elif side == 1:
            cx, cy, angle = cfg.width + w / 2 - 1, rng.uniform(0.15, 0.85) * cfg.height, np.pi + rng.uniform(-0.7, 0.7)
        elif side == 2:
            cx, cy, angle = rng.uniform(0.15, 0.85) * cfg.width, -h / 2 + 1, np.pi / 2 + rng.uniform(-0.7, 0.7)
        else:
            cx, cy, angle = rng.uniform(0.15, 0.85) * cfg.width, cfg.height + h / 2 - 1, -np.pi / 2 + rng.uniform(-0.7, 0.7)
    else:
        cx, cy = rng.uniform(0.15, 0.85) * cfg.width, rng.uniform(0.15, 0.85) * cfg.height
        angle = rng.uniform(0, 2 * np.pi)
    return _Object(oid, cx, cy, w, h, speed * np.cos(angle), speed * np.sin(angle), rng.uniform(), _colour(rng))


def _render(objects, background, rng):
    """Draw back to front; returns the image and the id buffer that defines visibility."""
    h, w, _ = background.shape
    img = background + rng.normal(0, 3, size=background.shape).astype(np.float32)
    ids = np.zeros((h, w), dtype=np.int64)
    for o in sorted(objects, key=lambda o: o.depth):
        x1, y1, x2, y2 = (int(round(v)) for v in o.xyxy())
        xa, ya, xb, yb = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if xb <= xa or yb <= ya:
            continue
        img[ya:yb, xa:xb] = o.color
        # a dark outline makes the extent of overlapping same-coloured objects visible
        inner = img[ya:yb, xa:xb]
        inner[: max(0, min(2, y1 + 2 - ya))] *= 0.45
        inner[max(0, y2 - 2 - ya):] *= 0.45
        inner[:, : max(0, min(2, x1 + 2 - xa))] *= 0.45
        inner[:, max(0, x2 - 2 - xa):] *= 0.45
        ids[ya:yb, xa:xb] = o.id
    return np.clip(img, 0, 255).astype(np.uint8), ids


def generate_sequence(seq_dir, cfg: SyntheticConfig, seed: int, name: Optional[str] = None) -> Dict:
    """Writes one sequence; returns a summary (frames, ids, gt rows). Same seed -> same files."""
    seq_dir = Path(seq_dir)
    (seq_dir / "img1").mkdir(parents=True, exist_ok=True)
    (seq_dir / "gt").mkdir(exist_ok=True)
    (seq_dir / "det").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    background = _background(rng, cfg.width, cfg.height)
    next_id = 1
    objects: List[_Object] = []
    for _ in range(cfg.initial_objects):
        objects.append(_spawn(rng, next_id, cfg, at_border=False))
        next_id += 1
    gt_rows, det_rows = [], []
    for frame in range(1, cfg.seq_length + 1):
        if len(objects) < cfg.max_objects and rng.uniform() < cfg.spawn_prob:
            objects.append(_spawn(rng, next_id, cfg, at_border=True))
            next_id += 1
        img, ids = _render(objects, background, rng)
        Image.fromarray(img).save(seq_dir / "img1" / f"{frame:06d}.jpg", quality=95)
        for o in objects:
            # ground truth is the drawn pixel extent, so boxes and visibility agree with the image
            x1, y1, x2, y2 = (int(round(v)) for v in o.xyxy())
            xa, ya, xb, yb = max(x1, 0), max(y1, 0), min(x2, cfg.width), min(y2, cfg.height)
            if xb - xa < cfg.min_box or yb - ya < cfg.min_box:
                continue
            visibility = float((ids == o.id).sum()) / ((x2 - x1) * (y2 - y1))
            box = (xa, ya, xb - xa, yb - ya)
            # MOTChallenge boxes are 1-based pixel coordinates
            gt_rows.append((frame, o.id, box[0] + 1, box[1] + 1, box[2], box[3], 1, 1, min(visibility, 1.0)))
            if visibility > 0.3 and rng.uniform() >= cfg.det_miss:
                jit = rng.normal(0, cfg.det_noise, size=4) * np.array([box[2], box[3], box[2], box[3]])
                det_rows.append((frame, -1, box[0] + 1 + jit[0], box[1] + 1 + jit[1],
                                 max(2.0, box[2] + jit[2]), max(2.0, box[3] + jit[3]), rng.uniform(0.5, 1.0)))
        for _ in range(rng.poisson(cfg.det_fp)):
            fw, fh = rng.uniform(cfg.min_size, cfg.max_size, size=2)
            det_rows.append((frame, -1, rng.uniform(0, cfg.width - fw) + 1, rng.uniform(0, cfg.height - fh) + 1,
                             fw, fh, rng.uniform(0.1, 0.6)))
        # move: velocity is pulled back towards its initial value so paths stay smooth but not straight
        for o in objects:
            o.vx = 0.9 * o.vx + 0.1 * o.v0[0] + rng.normal(0, cfg.velocity_noise)
            o.vy = 0.9 * o.vy + 0.1 * o.v0[1] + rng.normal(0, cfg.velocity_noise)
            o.cx += o.vx
            o.cy += o.vy
        objects = [o for o in objects if o.cx + o.w / 2 > 0 and o.cx - o.w / 2 < cfg.width
                   and o.cy + o.h / 2 > 0 and o.cy - o.h / 2 < cfg.height]
    gt_rows.sort(key=lambda r: (r[0], r[1]))
    with open(seq_dir / "gt" / "gt.txt", "w") as f:
        for r in gt_rows:
            f.write(f"{r[0]},{r[1]},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},{r[6]},{r[7]},{r[8]:.4f}\n")
    with open(seq_dir / "det" / "det.txt", "w") as f:
        for r in det_rows:
            f.write(f"{r[0]},-1,{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},{r[6]:.4f},-1,-1,-1\n")
    ini = configparser.ConfigParser()
    ini.optionxform = str  # MOTChallenge keys are camelCase
    ini["Sequence"] = {"name": name or seq_dir.name, "imDir": "img1", "frameRate": str(cfg.frame_rate),
                       "seqLength": str(cfg.seq_length), "imWidth": str(cfg.width),
                       "imHeight": str(cfg.height), "imExt": ".jpg"}
    with open(seq_dir / "seqinfo.ini", "w") as f:
        ini.write(f, space_around_delimiters=False)
    return {"frames": cfg.seq_length, "ids": next_id - 1, "gt_rows": len(gt_rows), "det_rows": len(det_rows)}


def generate_dataset(root, cfg: SyntheticConfig, splits: Dict[str, int], seed: int = 0) -> Dict[str, List[str]]:
    """`root/<split>/SYN-<split>-NN` for each split; skipped when `root/generator.json` already records
    the same settings (generation is deterministic, so a cached copy is identical)."""
    root = Path(root)
    record = {"config": asdict(cfg), "splits": dict(splits), "seed": seed}
    marker = root / "generator.json"
    names = {s: [f"SYN-{s}-{i:02d}" for i in range(n)] for s, n in splits.items()}
    if marker.is_file() and json.loads(marker.read_text()) == record:
        return names
    for split_idx, (split, seqs) in enumerate(sorted(names.items())):
        for i, name in enumerate(seqs):
            # distinct, stable seeds per (split, index): test sequences never repeat training ones
            seq_seed = int(np.random.SeedSequence([seed, split_idx, i]).generate_state(1)[0])
            generate_sequence(root / split / name, cfg, seq_seed, name)
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(record, indent=1))
    return names


def generate_splits(root, settings: SyntheticSplitsConfig) -> Dict[str, List[str]]:
    """`data.synthetic`: its number of sequences per split, generated into `root`."""
    splits = {"train": settings.num_train, "val": settings.num_val, "test": settings.num_test}
    return generate_dataset(root, settings, splits, seed=settings.seed)
