"""Image retrieval data sets in their native layouts, split by class for metric learning.

- `cub`: CUB-200-2011 (`images.txt`, `image_class_labels.txt`, `images/`); the first half of the
  classes (1-100) train, the rest (101-200) test. `cub100` (0-based ids, 100 classes) splits 0-49 /
  50-99. The image-level `train_test_split.txt` is a classification split and is ignored (in cub100
  its flags are even inverted).
- `cars196`: `cars_annos.mat` + `car_ims/`; classes 1-98 train, 99-196 test.
- `sop`: Stanford Online Products `Ebay_train.txt` / `Ebay_test.txt` (11,318 / 11,316 classes).
- `inshop`: In-Shop `list_eval_partition.txt`; test = query + gallery, marked by `is_query`.
- `folder`: `root/<class>/<image>`; the first half of the sorted class folders train.

The validation split is carved from the *training* classes (the last `val_classes` of them), so
model selection never looks at the test classes. Items are (image [3, H, W], label); labels are
contiguous 0..C-1 within each split.
"""
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from trackformer.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from trackformer.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def resolve_root(root: str, key: str = "data.root") -> Path:
    """The data root as given (a relative path is relative to the working directory); a missing
    folder is a one-line error naming the key that sets it."""
    path = Path(root).expanduser()
    if not path.is_dir():
        where = "" if path.is_absolute() else f" (relative to the working directory {Path.cwd()})"
        raise DataError(path, f"data set folder not found{where}; set {key}=<folder>")
    return path.resolve()


def _rows(path: Path, min_fields: int, skip: int = 0) -> List[List[str]]:
    """Whitespace- or comma-separated fields per line (CUB uses "id path", cub100 "id, path")."""
    if not path.is_file():
        raise DataError(path, "file not found")
    rows = []
    for n, line in enumerate(path.read_text().splitlines()[skip:], start=skip + 1):
        if not line.strip():
            continue
        fields = line.replace(",", " ").split()
        if len(fields) < min_fields:
            raise DataError(path, f"expected {min_fields} fields, got {len(fields)}", line=n)
        rows.append(fields)
    return rows


def _int(path: Path, value: str, line: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(path, f"expected an integer, got {value!r}", line=line) from None


def parse_cub(root: Path) -> Tuple[List[Path], np.ndarray]:
    images = _rows(root / "images.txt", 2)
    labels = {r[0]: r[1] for r in _rows(root / "image_class_labels.txt", 2)}
    paths, ys = [], []
    for n, (image_id, rel) in enumerate(images, 1):
        if image_id not in labels:
            raise DataError(root / "image_class_labels.txt", f"no label for image id {image_id}")
        paths.append(root / "images" / rel)
        ys.append(_int(root / "image_class_labels.txt", labels[image_id], n))
    return paths, np.asarray(ys)


def parse_cars196(root: Path) -> Tuple[List[Path], np.ndarray]:
    from scipy.io import loadmat

    mat = root / "cars_annos.mat"
    if not mat.is_file():
        raise DataError(mat, "file not found (Cars196 ships cars_annos.mat beside car_ims/)")
    annos = loadmat(str(mat))["annotations"][0]
    paths = [root / str(a["relative_im_path"][0]) for a in annos]
    return paths, np.asarray([int(a["class"][0][0]) for a in annos])


def parse_sop(root: Path, split: str) -> Tuple[List[Path], np.ndarray]:
    rows = _rows(root / f"Ebay_{'train' if split == 'train' else 'test'}.txt", 4, skip=1)
    return [root / r[3] for r in rows], np.asarray([int(r[1]) for r in rows])


def parse_inshop(root: Path, split: str) -> Tuple[List[Path], np.ndarray, np.ndarray]:
    part = root / "list_eval_partition.txt"
    rows = _rows(part, 3, skip=2)
    wanted = ("train",) if split == "train" else ("query", "gallery")
    rows = [r for r in rows if r[2] in wanted]
    items = sorted({r[1] for r in rows})
    index = {item: i for i, item in enumerate(items)}
    return ([root / r[0] for r in rows], np.asarray([index[r[1]] for r in rows]),
            np.asarray([r[2] == "query" for r in rows]))


def parse_folder(root: Path) -> Tuple[List[Path], np.ndarray, List[str]]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise DataError(root, "no class sub-folders (expected root/<class>/<image>)")
    paths, ys = [], []
    for c, name in enumerate(classes):
        files = sorted(f for f in (root / name).iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        paths += files
        ys += [c] * len(files)
    return paths, np.asarray(ys), classes


def build_transform(train: bool, image_size: int, resize: int, scale: Sequence[float] = (0.16, 1.0)):
    from torchvision import transforms as T

    norm = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train:
        return T.Compose([T.RandomResizedCrop(image_size, scale=tuple(scale)), T.RandomHorizontalFlip(), *norm])
    return T.Compose([T.Resize(resize), T.CenterCrop(image_size), *norm])


class RetrievalDataset(torch.utils.data.Dataset):
    """(image, label) pairs; `labels` are contiguous, `class_ids` the data set's own ids."""

    def __init__(self, paths: List[Path], class_ids: np.ndarray, transform, class_names=None,
                 samples_per_class: int = 0, is_query: Optional[np.ndarray] = None):
        self.paths = list(paths)
        self.class_ids = np.asarray(class_ids)
        uniq, self.labels = np.unique(self.class_ids, return_inverse=True)
        self.transform = transform
        self.samples_per_class = samples_per_class
        self.is_query = is_query
        names = class_names or {}
        self.info = {"num_classes": int(len(uniq)),
                     "classes": [str(names.get(int(c), c)) if isinstance(names, dict) else str(c) for c in uniq]}

    def __len__(self):
        return len(self.paths)

    def load(self, i: int):
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as im:
                return im.convert("RGB")
        except (OSError, ValueError) as e:
            raise DataError(self.paths[i], f"cannot read image: {e}") from None

    def __getitem__(self, i: int):
        return self.transform(self.load(i)), int(self.labels[i])

    def batch_sampler(self, batch_size: int, seed: int, rank: int, world_size: int):
        """P x K batches (K = samples_per_class, P = batch_size // K); plain shuffling when K = 0."""
        from .samplers import ClassBalancedBatchSampler, ShuffledBatchSampler

        if not self.samples_per_class:
            return ShuffledBatchSampler(len(self), batch_size, seed, rank, world_size)
        if batch_size % self.samples_per_class:
            raise ConfigError("train.batch_size", f"{batch_size} is not a multiple of data.samples_per_class "
                                                  f"({self.samples_per_class})")
        if batch_size // self.samples_per_class > self.info["num_classes"]:
            raise ConfigError("train.batch_size", f"{batch_size // self.samples_per_class} classes per batch but "
                                                  f"the training split has {self.info['num_classes']}")
        return ClassBalancedBatchSampler(self.labels, batch_size // self.samples_per_class, self.samples_per_class,
                                         seed=seed, rank=rank, world_size=world_size)


def _split_classes(class_ids: np.ndarray, split: str, num_train: Optional[int], val_classes: int):
    """Indices of `split`: sorted classes [0, num_train) train (minus the last `val_classes`, which
    form `val`), [num_train, end) test."""
    classes = np.unique(class_ids)
    n_train = len(classes) // 2 if num_train is None else num_train
    if not 0 < n_train < len(classes):
        raise ConfigError("num_train_classes", f"must be in 1..{len(classes) - 1}, got {n_train}")
    if not 0 <= val_classes < n_train:
        raise ConfigError("val_classes", f"must be in 0..{n_train - 1}, got {val_classes}")
    train_cls = classes[:n_train - val_classes]
    chosen = {"train": train_cls, "val": classes[n_train - val_classes:n_train],
              "test": classes[n_train:]}[split]
    return np.nonzero(np.isin(class_ids, chosen))[0]


def build(cfg, split: str, layout: str):
    """The `split` of the data set at `cfg.root` in `layout`; None for an empty val split."""
    root = resolve_root(cfg.root)
    names = None
    is_query = None
    if layout == "cub":
        paths, ids = parse_cub(root)
        if (root / "classes.txt").is_file():
            names = {int(r[0]): r[1] for r in _rows(root / "classes.txt", 2)}
    elif layout == "cars196":
        paths, ids = parse_cars196(root)
    elif layout == "folder":
        paths, ids, folder_names = parse_folder(root)
        names = dict(enumerate(folder_names))
    elif layout in ("sop", "inshop"):
        paths = ids = None  # their files already separate train and test
    else:
        raise ConfigError("name", f"unknown retrieval layout {layout!r}")

    if layout in ("sop", "inshop"):
        if split == "test":
            if layout == "sop":
                paths, ids = parse_sop(root, "test")
            else:
                paths, ids, is_query = parse_inshop(root, "test")
            keep = np.arange(len(paths))
        else:
            paths, ids = (parse_sop(root, "train") if layout == "sop" else parse_inshop(root, "train")[:2])
            classes = np.unique(ids)
            if not 0 <= cfg.val_classes < len(classes):
                raise ConfigError("val_classes", f"must be in 0..{len(classes) - 1}, got {cfg.val_classes}")
            val = classes[len(classes) - cfg.val_classes:] if cfg.val_classes else classes[:0]
            keep = np.nonzero(~np.isin(ids, val) if split == "train" else np.isin(ids, val))[0]
    else:
        keep = _split_classes(ids, split, cfg.num_train_classes, cfg.val_classes)
    if len(keep) == 0:
        if split == "val":
            return None
        raise DataError(root, f"the {split} split is empty")
    train = split == "train"
    size = (cfg.train_size or cfg.image_size) if train else cfg.image_size
    transform = build_transform(train, size, cfg.resize, cfg.scale)
    return RetrievalDataset([paths[i] for i in keep], ids[keep], transform, class_names=names,
                            samples_per_class=cfg.samples_per_class if train else 0,
                            is_query=None if is_query is None else is_query[keep])
