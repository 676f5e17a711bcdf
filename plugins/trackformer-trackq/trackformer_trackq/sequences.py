"""Training data for track queries: frame pairs from MOTChallenge sequences, and static-image pairs
(a random shift/crop of the same image) from COCO-format detection sets such as CrowdHuman.

An item is `(image [3,H,W], target)` for the current frame; `target["prev_image"]` and
`target["prev_target"]` hold the previous frame, which went through the same geometric augmentation
plus a small extra crop. Boxes are cxcywh relative to the image; `track_ids` carry identities.
A sequence entry may name part of a sequence, `TUD-Campus:1-36`: only those frames are used, for the
current and the previous frame alike. Boxes leaving the image are clipped to it for training.
"""
import random
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from trackformer.data import transforms as T
from trackformer.data.frame_range import FrameRange, split_entry
from trackformer.errors import ConfigError, DataError

from .settings import MOTPairsConfig, StaticPairsConfig

PER_BOX = T.PER_BOX + ("track_ids",)  # what a crop filters along with the boxes


def is_sequence_dir(path: Path) -> bool:
    return (Path(path) / "img1").is_dir()


def find_sequences(root, entries: Sequence[str]) -> List[Path]:
    """Each entry (relative to `root`) is a sequence directory or a folder of them."""
    return [p for p, _ in find_sequence_entries(root, entries)]


def find_sequence_entries(root, entries: Sequence[str]) -> List[Tuple[Path, Optional[FrameRange]]]:
    """As `find_sequences`, with each entry's frame range (`<sequence>:FIRST-LAST`; None: all frames)."""
    out = []
    for entry in entries:
        entry, frames = split_entry(entry, "data")
        p = Path(root) / entry
        if is_sequence_dir(p):
            out.append((p, frames))
        elif frames is not None:
            raise DataError(p, "a frame range needs a sequence folder (with img1/)")
        elif p.is_dir():
            seqs = sorted(q for q in p.iterdir() if is_sequence_dir(q))
            if not seqs:
                raise DataError(p, "no MOTChallenge sequence (a folder with img1/) in this folder")
            out.extend((q, None) for q in seqs)
        else:
            raise DataError(p, "no such sequence or folder")
    return out


def read_sequence(seq_dir, classes=(1,), min_visibility: float = 0.0, frames: Optional[FrameRange] = None) -> Dict:
    """Through the core's MOTChallenge reader: frames (image paths, from img1/, not seqLength), and
    gt per frame index (0-based): `boxes` xyxy 0-based pixels [n, 4] and `ids` [n], for consider != 0
    rows of `classes` (MOT15 files without a class column keep all rows) at `min_visibility`; with
    `frames`, gt only inside that range (`range`: its first and last 0-based frame index)."""
    from trackformer.data import mot

    seq = mot.read_sequence(seq_dir, gt=True, det=False)
    frames_list = list(seq.info.frame_files)
    if not frames_list:
        raise DataError(Path(seq_dir) / "img1", "no frames")
    gt: Dict[int, Dict] = {}
    part = frames is not None
    frames = (frames or FrameRange()).resolve(len(frames_list), f"data: {Path(seq_dir).name}")
    if seq.gt is not None:
        g = seq.gt
        keep = (g.score != 0) & (np.isin(g.cls, classes) | (g.cls == -1)) & (g.visibility >= min_visibility)
        g = g.select(keep)
        xyxy = np.concatenate([g.boxes[:, :2] - 1, g.boxes[:, :2] - 1 + g.boxes[:, 2:]], 1)
        for f in range(frames.first - 1, frames.last):
            m = g.frame == f + 1
            gt[f] = {"boxes": torch.as_tensor(xyxy[m], dtype=torch.float32).reshape(-1, 4),
                     "ids": torch.as_tensor(g.id[m], dtype=torch.int64)}
    return {"name": seq.info.name, "dir": Path(seq_dir), "frames": frames_list, "gt": gt,
            "width": seq.info.width, "height": seq.info.height, "frame_rate": seq.info.frame_rate,
            "range": (frames.first - 1, frames.last - 1), "frame_range": frames if part else None}


def _random_region(width: int, height: int, min_frac: float,
                   same_fraction: bool = False) -> Tuple[int, int, int, int]:
    """(top, left, height, width) of a crop keeping min_frac..1 of each side, anywhere in the image;
    `same_fraction`: one fraction for both sides (the aspect ratio kept)."""
    fw = random.uniform(min_frac, 1.0)
    fh = fw if same_fraction else random.uniform(min_frac, 1.0)
    cw, ch = max(1, int(round(width * fw))), max(1, int(round(height * fh)))
    return random.randint(0, height - ch), random.randint(0, width - cw), ch, cw


def _crop_resize_back(image, target, min_frac: float):
    """A random crop of `min_frac`..1 of each side, resized back to the input size: the shifted and
    zoomed "previous frame" (TrackFormer: 80-100% for static images, slight jitter for video)."""
    w, h = T._image_size(image)
    region = _random_region(w, h, min_frac, same_fraction=True)
    ch, cw = region[2:]
    image, target = T.crop(image, target, region, PER_BOX)
    image = image.resize((w, h), Image.BILINEAR)
    sx, sy = w / cw, h / ch
    target = dict(target, boxes=target["boxes"] * torch.tensor([sx, sy, sx, sy]), size=torch.tensor([h, w]))
    return image, target


class PairTransform:
    """The same flip, crop and scale for both frames; the previous one also gets a crop jitter.

    With probability `crop` both frames are cut to the same random region keeping `crop_min`..1 of
    each side (DETR's random-size crop, in fractions so one setting fits every sequence size) before
    they are resized to the drawn scale: objects of a short clip seen at more sizes and positions."""

    def __init__(self, train: bool, scales: Sequence[int], max_size: Optional[int], hflip: float = 0.5,
                 prev_crop: float = 0.95, crop: float = 0.0, crop_min: float = 0.5):
        self.train, self.scales, self.max_size = train, list(scales), max_size
        self.hflip, self.prev_crop = hflip, prev_crop
        self.crop, self.crop_min = crop, crop_min
        self.final = T.Compose([T.ToTensor(), T.Normalize()])

    def __call__(self, image, target, prev_image=None, prev_target=None):
        flip = self.train and random.random() < self.hflip
        short = random.choice(self.scales) if self.train else self.scales[-1]
        if self.train and self.crop > 0 and random.random() < self.crop:
            region = _random_region(*T._image_size(image), self.crop_min)
            image, target = T.crop(image, target, region, PER_BOX)
            if prev_image is not None:
                prev_image, prev_target = T.crop(prev_image, prev_target, region, PER_BOX)
        if prev_image is not None and self.prev_crop < 1:
            prev_image, prev_target = _crop_resize_back(prev_image, prev_target, self.prev_crop)
        out = []
        for im, t in ((image, target), (prev_image, prev_target)):
            if im is None:
                continue
            if flip:
                im, t = T.hflip(im, t)
            im, t = T.resize(im, t, short, self.max_size)
            out.append(self.final(im, t))
        return out


def _target(boxes, ids, image_id: int, width: int, height: int) -> Dict:
    return {"boxes": boxes.clone(), "labels": torch.zeros(len(ids), dtype=torch.int64),
            "track_ids": ids.clone(), "image_id": torch.tensor(image_id),
            "orig_size": torch.tensor([height, width]), "size": torch.tensor([height, width])}


def collate_pairs(batch):
    images, targets = T.collate(batch)
    return images, targets


class MOTFramePairs(torch.utils.data.Dataset):
    """Every annotated frame t of the sequences, paired with a previous frame drawn uniformly from
    [t - frame_range, t + frame_range] (it may lie ahead), as TrackFormer trains."""

    info = {"num_classes": 1, "class_names": ["pedestrian"]}

    def __init__(self, sequence_dirs: Sequence, transform: PairTransform, frame_range: int = 5,
                 classes=(1,), min_visibility: float = 0.0, pairs: bool = True,
                 frame_ranges: Optional[Sequence[Optional[FrameRange]]] = None):
        self.sequence_dirs = [Path(s) for s in sequence_dirs]
        ranges = list(frame_ranges) if frame_ranges is not None else [None] * len(self.sequence_dirs)
        self.sequences = [read_sequence(s, classes, min_visibility, r) for s, r in zip(self.sequence_dirs, ranges)]
        self.transform, self.frame_range, self.pairs = transform, frame_range, pairs
        self.index = [(s, f) for s, seq in enumerate(self.sequences) for f in sorted(seq["gt"])]
        missing = [str(seq["dir"]) for seq in self.sequences if not seq["gt"]]
        if missing and pairs:
            raise DataError(missing[0], "training needs gt/gt.txt")

    def __len__(self):
        return len(self.index)

    def _load(self, s: int, f: int):
        seq = self.sequences[s]
        path = seq["frames"][f]
        try:
            image = Image.open(path).convert("RGB")
        except OSError as e:
            raise DataError(path, f"cannot read image: {e}") from None
        gt = seq["gt"][f]
        w, h = image.size   # boxes leaving the image (kept as annotated for evaluation) clipped for training
        boxes = torch.stack([gt["boxes"][:, 0].clamp(0, w), gt["boxes"][:, 1].clamp(0, h),
                             gt["boxes"][:, 2].clamp(0, w), gt["boxes"][:, 3].clamp(0, h)], 1)
        inside = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        return image, _target(boxes[inside], gt["ids"][inside], s * 100000 + f, w, h)

    def __getitem__(self, idx: int):
        s, f = self.index[idx]
        image, target = self._load(s, f)
        if not self.pairs:
            return self.transform(image, target)[0]
        lo, hi = self.sequences[s]["range"]  # the previous frame never leaves the sequence's range
        pf = random.randint(max(lo, f - self.frame_range), min(hi, f + self.frame_range))
        prev_image, prev_target = self._load(s, pf)
        (image, target), (prev_image, prev_target) = self.transform(image, target, prev_image, prev_target)
        target["prev_image"], target["prev_target"] = prev_image, prev_target
        return image, target

    collate_fn = staticmethod(collate_pairs)


class StaticImagePairs(torch.utils.data.Dataset):
    """COCO-format detection data as tracking pairs: the previous frame is a random crop (80-100%)
    of the same image, resized back; every box is its own identity."""

    def __init__(self, image_dir, ann_file, transform: PairTransform, category_ids=(1,),
                 prev_crop: float = 0.8):
        from trackformer.data.coco import CocoDetection

        self.coco = CocoDetection(image_dir, ann_file)
        self.cat_ids = set(category_ids)
        self.transform, self.prev_crop = transform, prev_crop
        self.info = {"num_classes": 1, "class_names": ["pedestrian"]}

    def __len__(self):
        return len(self.coco)

    def __getitem__(self, idx: int):
        image = self.coco.load_image(idx)
        t = self.coco.load_target(idx, *image.size)
        cats = torch.tensor([self.coco.cat_to_label[c] for c in self.cat_ids if c in self.coco.cat_to_label])
        keep = torch.isin(t["labels"], cats)
        boxes = t["boxes"][keep]
        target = _target(boxes, torch.arange(len(boxes)), int(t["image_id"]), *image.size)
        prev_image, prev_target = _crop_resize_back(image, dict(target), self.prev_crop)
        (image, target), (prev_image, prev_target) = self.transform(image, target, prev_image, prev_target)
        target["prev_image"], target["prev_target"] = prev_image, prev_target
        return image, target

    collate_fn = staticmethod(collate_pairs)


def build(settings: MOTPairsConfig, split: str, **deps) -> Optional[MOTFramePairs]:
    """The `mot_pairs` data set of `split` (None when the split lists no sequences); `synthetic`
    sequences are generated into `root` first."""
    if settings.synthetic is not None:
        from .synthetic import generate_splits

        generate_splits(settings.root, settings.synthetic)
    entries = getattr(settings, split)
    if not entries:
        return None
    if not Path(settings.root).is_dir():
        raise ConfigError("root", f"not a directory: {settings.root}")
    transform = PairTransform(split == "train", settings.scales, settings.max_size, settings.hflip,
                              settings.prev_crop, settings.crop, settings.crop_min)
    found = find_sequence_entries(settings.root, entries)
    return MOTFramePairs([p for p, _ in found], transform, settings.frame_range, tuple(settings.classes),
                         settings.min_visibility, pairs=True, frame_ranges=[r for _, r in found])


def build_static(settings: StaticPairsConfig, split: str, **deps):
    """The `static_pairs` data set: COCO-format images as pairs for training; the evaluation splits
    are MOTChallenge sequences under `mot_root`."""
    if split != "train":
        entries = getattr(settings, split)
        if not entries or settings.mot_root is None:
            return None
        transform = PairTransform(False, settings.scales, settings.max_size, 0.0, 1.0)
        found = find_sequence_entries(settings.mot_root, entries)
        return MOTFramePairs([p for p, _ in found], transform, pairs=True, frame_ranges=[r for _, r in found])
    transform = PairTransform(True, settings.scales, settings.max_size, settings.hflip, 1.0)
    return StaticImagePairs(settings.image_dir, settings.ann_file, transform, tuple(settings.category_ids),
                            settings.prev_crop)
