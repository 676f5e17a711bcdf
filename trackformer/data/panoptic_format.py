"""The COCO panoptic format on disk: one RGB PNG per image plus one JSON for the whole set.

PNG: segment id = R + 256·G + 256²·B, 0 = VOID. JSON: `annotations [{image_id, file_name,
segments_info [{id, category_id, area, bbox [x, y, w, h], iscrowd}]}]`, `categories [{id, name,
isthing, ...}]`, and usually `images`. Segment ids are arbitrary but unique per image and match the
PNG. Instance masks of the detection world go as COCO RLE (`masks_to_rle`).

Reading checks what the rest of the code relies on and names the file and entry at fault
(`DataError`); writing is atomic (`trackformer.atomic`), so a killed writer leaves no half PNG.
"""
import io
import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

from trackformer.atomic import atomic_write, write_json_atomic
from trackformer.errors import DataError

VOID = 0
MAX_ID = 256 ** 3 - 1


def rgb2id(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 -> [H, W] int32 ids (R + 256·G + 256²·B)."""
    ids = rgb[..., 2].astype(np.int32)
    ids <<= 8
    ids |= rgb[..., 1]
    ids <<= 8
    ids |= rgb[..., 0]
    return ids


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """[H, W] integer ids in [0, 2^24) -> [H, W, 3] uint8."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() > MAX_ID):
        raise ValueError(f"segment ids must lie in [0, {MAX_ID}], got {ids.min()}..{ids.max()}")
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)


def read_id_png(path) -> np.ndarray:
    """A panoptic PNG -> [H, W] int32 segment ids."""
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB") if im.mode != "RGB" else im)
    except (OSError, ValueError) as e:
        raise DataError(path, f"cannot read panoptic PNG: {e}") from None
    return rgb2id(rgb)


def encode_id_png(ids: np.ndarray) -> bytes:
    """[H, W] ids -> PNG bytes (what DETR's post-processor returns as `png_string`)."""
    buffer = io.BytesIO()
    Image.fromarray(id2rgb(ids)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_id_png(path, ids: np.ndarray) -> Path:
    with atomic_write(path, "wb") as f:
        f.write(encode_id_png(ids))
    return Path(path)


def segments_from_ids(ids: np.ndarray, categories: Dict[int, int], iscrowd: Dict[int, int] = None) -> List[Dict]:
    """`segments_info` of an id map: {id, category_id, iscrowd, bbox [x, y, w, h], area} for each
    id in `categories` ({segment id: category id}) that has pixels, in `categories`' order."""
    out = []
    for seg_id, cat in categories.items():
        ys, xs = np.nonzero(ids == seg_id)
        if len(ys) == 0:
            continue
        x0, y0 = int(xs.min()), int(ys.min())
        out.append({"id": int(seg_id), "category_id": int(cat), "iscrowd": int((iscrowd or {}).get(seg_id, 0)),
                    "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1], "area": int(len(ys))})
    return out


def _check_segments(path, where: str, segments) -> None:
    if not isinstance(segments, list):
        raise DataError(path, f"{where}: 'segments_info' must be a list")
    seen = set()
    for j, s in enumerate(segments):
        if not isinstance(s, dict) or not isinstance(s.get("id"), int) or not isinstance(s.get("category_id"), int):
            raise DataError(path, f"{where}.segments_info[{j}]: needs integer 'id' and 'category_id'")
        if not 0 < s["id"] <= MAX_ID:
            raise DataError(path, f"{where}.segments_info[{j}]: id {s['id']} outside 1..{MAX_ID}")
        if s["id"] in seen:
            raise DataError(path, f"{where}.segments_info[{j}]: duplicate segment id {s['id']}")
        seen.add(s["id"])


def load_panoptic_json(path, need_categories: bool = True) -> Dict:
    """Read and check a COCO panoptic JSON; `categories` become required unless told otherwise
    (prediction files may omit them)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "panoptic JSON not found")
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(path, f"not valid JSON: {e.msg} (column {e.colno})", line=e.lineno) from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise DataError(path, "expected a JSON object with a list 'annotations'")
    if need_categories and not isinstance(data.get("categories"), list):
        raise DataError(path, "missing list 'categories'")
    for i, cat in enumerate(data.get("categories") or []):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or cat.get("isthing") not in (0, 1):
            raise DataError(path, f"categories[{i}]: needs an integer 'id' and 'isthing' 0 or 1")
    image_ids = set()
    for i, ann in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict) or not isinstance(ann.get("file_name"), str) or "image_id" not in ann:
            raise DataError(path, f"{where}: needs 'image_id' and a string 'file_name'")
        if ann["image_id"] in image_ids:
            raise DataError(path, f"{where}: duplicate image_id {ann['image_id']}")
        image_ids.add(ann["image_id"])
        _check_segments(path, where, ann.get("segments_info"))
    return data


def write_panoptic(folder, json_path, annotations: Sequence[Tuple[Dict, np.ndarray]], categories: List[Dict],
                   images: List[Dict] = None) -> Path:
    """Write `(annotation, id map)` pairs: each PNG as `folder/annotation["file_name"]`, then the
    JSON (annotations without their maps, `categories`, `images`). The JSON comes last, so a
    complete JSON implies complete PNGs."""
    folder = Path(folder)
    anns = []
    for ann, ids in annotations:
        write_id_png(folder / ann["file_name"], ids)
        anns.append(ann)
    data = {"annotations": anns, "categories": categories}
    if images is not None:
        data["images"] = images
    return write_json_atomic(json_path, data, sort_keys=False)


def masks_to_rle(masks: np.ndarray) -> List[Dict]:
    """[N, H, W] binary masks -> COCO RLE dicts (counts as str, JSON-ready), pycocotools' encoding."""
    from pycocotools import mask as mask_utils

    masks = np.asarray(masks, dtype=np.uint8).reshape(-1, *np.shape(masks)[-2:])  # [N, H, W]
    rles = mask_utils.encode(np.asfortranarray(np.moveaxis(masks, 0, -1)))  # pycocotools takes [H, W, N]
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return list(rles)


def rle_to_masks(rles: List[Dict], height: int, width: int) -> np.ndarray:
    """COCO RLE dicts -> [N, H, W] uint8 masks."""
    from pycocotools import mask as mask_utils

    if not rles:
        return np.zeros((0, height, width), dtype=np.uint8)
    rles = [dict(r, counts=r["counts"].encode("ascii") if isinstance(r["counts"], str) else r["counts"])
            for r in rles]
    return np.moveaxis(mask_utils.decode(rles), -1, 0)
