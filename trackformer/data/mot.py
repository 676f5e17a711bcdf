"""MOTChallenge files: sequences (`seqinfo.ini`, `img1/`), `gt/gt.txt`, `det/det.txt`, tracker results.

Formats (boxes are x, y of the top-left corner, width, height, in 1-based pixels):

    gt.txt       frame,id,x,y,w,h,consider,class,visibility        9 columns (MOT16/17/20; MOT15: 10,
                                                                     consider then three -1 world columns)
    det.txt      frame,-1,x,y,w,h,score[,-1,-1,-1]                   7 or 10 columns
    results      frame,id,x,y,w,h,conf,-1,-1,-1                      10 columns (7 to 10 are read)

The number of frames of a sequence is the number of images actually in `img1/`, not `seqLength`:
trimmed copies of MOT17 keep the full-length `seqinfo.ini`. A malformed file fails with a DataError
naming the file and line; the results writer validates everything before it writes, then replaces
the target atomically, so a failure never leaves half a file behind.
"""
import configparser
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Union

import numpy as np

from ..atomic import atomic_write
from ..errors import DataError

PathLike = Union[str, Path]
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class Tracks:
    """Rows of a gt, det or results file in file order. N rows."""
    frame: np.ndarray                       # [N] int64, 1-based
    id: np.ndarray                          # [N] int64 (-1 in det files)
    boxes: np.ndarray                       # [N, 4] float64 x, y, w, h
    score: np.ndarray                       # [N] float64: gt consider flag, det score, result confidence
    cls: np.ndarray                         # [N] int64: gt class; -1 where the file has no class column
    visibility: np.ndarray                  # [N] float64: gt visibility; 1 elsewhere
    line: np.ndarray                        # [N] int64: 1-based line in the file, for error messages
    path: str = ""

    def __len__(self):
        return len(self.frame)

    def select(self, mask) -> "Tracks":
        return Tracks(self.frame[mask], self.id[mask], self.boxes[mask], self.score[mask], self.cls[mask],
                      self.visibility[mask], self.line[mask], self.path)

    @staticmethod
    def from_arrays(frame, ids, boxes, scores=None, path: PathLike = "<memory>") -> "Tracks":
        """A tracker's output held in memory (e.g. the tracking plugin's), validated as a results file
        would be; `line` numbers the rows from 1."""
        frame = np.asarray(frame).reshape(-1)
        rows = np.column_stack([frame, np.asarray(ids).reshape(-1), np.asarray(boxes, np.float64).reshape(-1, 4),
                                np.ones(len(frame)) if scores is None else np.asarray(scores).reshape(-1)])
        lines = np.arange(1, len(rows) + 1, dtype=np.int64)
        if not np.isfinite(rows).all():
            raise DataError(path, "non-finite value", line=int(lines[~np.isfinite(rows).all(1)][0]))
        _check_rows(path, rows, lines, None, check_ids=True)
        return Tracks(rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), rows[:, 2:6].copy(),
                      rows[:, 6].copy(), np.full(len(rows), -1, np.int64), np.ones(len(rows)), lines, str(path))

    @staticmethod
    def empty(path: PathLike = "") -> "Tracks":
        return Tracks(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0),
                      np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), str(path))


@dataclass
class SequenceInfo:
    name: str
    path: Path
    num_frames: int                         # frames actually present (img1/), else seqLength
    seq_length: Optional[int] = None        # what seqinfo.ini claims
    frame_rate: Optional[float] = None
    width: Optional[int] = None
    height: Optional[int] = None
    frame_files: List[Path] = field(default_factory=list)   # img1 files, frame k at index k - 1


@dataclass
class Sequence:
    info: SequenceInfo
    gt: Optional[Tracks] = None
    det: Optional[Tracks] = None


# ---------------------------------------------------------------------------------------------- parsing

def _line_numbers(text: str) -> np.ndarray:
    """1-based line numbers of the non-blank lines, which are the rows np.loadtxt returns."""
    return np.array([i for i, ln in enumerate(text.splitlines(), 1) if ln.strip()], dtype=np.int64)


def _parse_rows(path: Path, text: str, delimiter, ncols: tuple) -> np.ndarray:
    """Line by line, for files the fast path refuses: names the first bad line. A trailing delimiter
    is tolerated, as the official evaluation tolerates it."""
    rows, width = [], None
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        parts = [p.strip() for p in (raw.split(delimiter) if delimiter else raw.split())]
        if parts and parts[-1] == "":
            parts = parts[:-1]
        if width is None:
            width = len(parts)
            if width not in ncols:
                raise DataError(path, f"{width} columns, expected {_expected(ncols)}", line=number)
        elif len(parts) != width:
            raise DataError(path, f"{len(parts)} columns where the file has {width}", line=number)
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            bad = next(p for p in parts if not _is_float(p))
            raise DataError(path, f"non-numeric value {bad!r}", line=number) from None
    return np.array(rows, dtype=np.float64).reshape(len(rows), width or max(ncols))


def _decode(path, data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise DataError(path, "not a text file") from None


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _expected(ncols: tuple) -> str:
    return " or ".join(str(n) for n in ncols)


def read_table(path: PathLike, ncols: tuple) -> tuple:
    """A numeric comma- (or whitespace-) separated table -> (rows [N, C] float64, line [N] int64)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(path, f"cannot read: {error.strerror or error}") from None
    if not data.strip():
        return np.zeros((0, max(ncols))), np.zeros(0, np.int64)
    first = data.lstrip().split(b"\n", 1)[0]
    delimiter = "," if b"," in first else None
    try:  # numpy's C parser; anything unusual goes to the line-by-line parser for a precise message
        rows = np.loadtxt(io.BytesIO(data), delimiter=delimiter, ndmin=2, dtype=np.float64, comments=None)
        if rows.shape[1] not in ncols:
            raise ValueError
        text = None
    except (ValueError, UnicodeDecodeError):
        text = _decode(path, data)
        rows = _parse_rows(path, text, delimiter, ncols)
    blank = data.count(b"\n") + (not data.endswith(b"\n")) != len(rows)
    if blank:
        lines = _line_numbers(text if text is not None else _decode(path, data))
    else:
        lines = np.arange(1, len(rows) + 1, dtype=np.int64)
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        raise DataError(path, "non-finite value (nan or inf)", line=int(lines[np.argmax(bad)]))
    return rows, lines


def _fail_first(path, mask, lines, message):
    if mask.any():
        i = int(np.argmax(mask))
        raise DataError(path, message(i) if callable(message) else message, line=int(lines[i]))


def _check_rows(path, rows, lines, num_frames: Optional[int], check_ids: bool):
    """The rules both gt and results obey: integer frames in the sequence, positive sizes, and for
    files with identities integer ids >= 0 that occur once per frame."""
    frame = rows[:, 0]
    _fail_first(path, frame != np.round(frame), lines, lambda i: f"frame {frame[i]:g} is not an integer")
    _fail_first(path, frame < 1, lines, lambda i: f"frame {frame[i]:g} is before the first frame (1)")
    if num_frames is not None:
        _fail_first(path, frame > num_frames, lines,
                    lambda i: f"frame {frame[i]:g} is outside the sequence (frames 1..{num_frames})")
    _fail_first(path, (rows[:, 4] <= 0) | (rows[:, 5] <= 0), lines,
                lambda i: f"non-positive box size {rows[i, 4]:g}x{rows[i, 5]:g}")
    if not check_ids:
        return
    ids = rows[:, 1]
    _fail_first(path, (ids != np.round(ids)) | (ids < 0), lines,
                lambda i: f"id {ids[i]:g} is not an integer >= 0")
    order = np.lexsort((ids, frame))                    # stable: the second of two rows is flagged
    dup = np.zeros(len(ids), bool)
    dup[order[1:]] = (frame[order[1:]] == frame[order[:-1]]) & (ids[order[1:]] == ids[order[:-1]])
    _fail_first(path, dup, lines, lambda i: f"id {ids[i]:g} occurs twice in frame {frame[i]:g}")


def read_gt(path: PathLike, num_frames: Optional[int] = None) -> Tracks:
    """gt.txt: 9 columns, or MOT15's 10 (consider, then world coordinates: its class column is -1)."""
    rows, lines = read_table(path, (9, 10))
    _check_rows(path, rows, lines, num_frames, check_ids=True)
    mot15 = rows.shape[1] == 10
    for col, what in ((6, "consider flag"),) if mot15 else ((6, "consider flag"), (7, "class")):
        v = rows[:, col]
        _fail_first(path, v != np.round(v), lines, lambda i: f"{what} {v[i]:g} is not an integer")
    cls = rows[:, 7].astype(np.int64) if not mot15 else np.full(len(rows), -1, np.int64)
    vis = rows[:, 8] if not mot15 else np.ones(len(rows))
    return Tracks(rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), rows[:, 2:6].copy(),
                  rows[:, 6].copy(), cls, vis.copy(), lines, str(path))


def read_results(path: PathLike, num_frames: Optional[int] = None) -> Tracks:
    """A tracker's results: 7 to 10 columns; column 8, where present, is the class (-1 or 1)."""
    rows, lines = read_table(path, (7, 8, 9, 10))
    _check_rows(path, rows, lines, num_frames, check_ids=True)
    cls = rows[:, 7].astype(np.int64) if rows.shape[1] >= 8 else np.full(len(rows), -1, np.int64)
    return Tracks(rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), rows[:, 2:6].copy(),
                  rows[:, 6].copy(), cls, np.ones(len(rows)), lines, str(path))


def read_det(path: PathLike, num_frames: Optional[int] = None) -> Tracks:
    """det.txt (7 or 10 columns), restricted to frames 1..num_frames: trimmed sequences keep the
    detections of the whole sequence."""
    rows, lines = read_table(path, (7, 10))
    _check_rows(path, rows, lines, None, check_ids=False)
    det = Tracks(rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), rows[:, 2:6].copy(),
                 rows[:, 6].copy(), np.full(len(rows), -1, np.int64), np.ones(len(rows)), lines, str(path))
    return det if num_frames is None else det.select(det.frame <= num_frames)


# --------------------------------------------------------------------------------------------- sequences

def read_seqinfo(path: PathLike) -> dict:
    """The [Sequence] section of a seqinfo.ini, with numbers converted."""
    path = Path(path)
    parser = configparser.ConfigParser()
    try:
        with open(path) as f:
            parser.read_file(f)
    except OSError as error:
        raise DataError(path, f"cannot read: {error.strerror or error}") from None
    except configparser.Error as error:
        raise DataError(path, f"not an ini file: {str(error).splitlines()[0]}") from None
    if "Sequence" not in parser:
        raise DataError(path, "no [Sequence] section")
    info = dict(parser["Sequence"])
    for key, kind in (("seqlength", int), ("imwidth", int), ("imheight", int), ("framerate", float)):
        if key in info:
            try:
                info[key] = kind(info[key])
            except ValueError:
                raise DataError(path, f"{key}={info[key]!r} is not a number") from None
    if "seqlength" in info and info["seqlength"] < 1:
        raise DataError(path, f"seqLength={info['seqlength']} must be positive")
    return info


def _frame_files(img_dir: Path) -> List[Path]:
    files = sorted((p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.stem.isdigit()),
                   key=lambda p: int(p.stem))
    numbers = [int(p.stem) for p in files]
    if numbers != list(range(1, len(files) + 1)):
        gap = next(i + 1 for i, n in enumerate(numbers + [None]) if n != i + 1)
        raise DataError(img_dir, f"frames must be numbered 1..N without gaps; frame {gap} is missing")
    return files


def read_sequence_info(seq_dir: PathLike) -> SequenceInfo:
    """Name, size and the number of frames actually present of one sequence folder."""
    seq_dir = Path(seq_dir)
    ini = seq_dir / "seqinfo.ini"
    info = read_seqinfo(ini) if ini.is_file() else {}
    img_dir = seq_dir / info.get("imdir", "img1")
    files = _frame_files(img_dir) if img_dir.is_dir() else []
    seq_length = info.get("seqlength")
    num_frames = len(files) or seq_length
    if not num_frames:
        raise DataError(seq_dir, "no seqinfo.ini with seqLength and no frames in img1/: "
                                 "cannot tell the sequence length")
    return SequenceInfo(name=info.get("name", seq_dir.name), path=seq_dir, num_frames=int(num_frames),
                        seq_length=seq_length, frame_rate=info.get("framerate"), width=info.get("imwidth"),
                        height=info.get("imheight"), frame_files=files)


def read_sequence(seq_dir: PathLike, gt: bool = True, det: bool = True) -> Sequence:
    """One MOTChallenge sequence folder; gt and det are None where their files are absent."""
    info = read_sequence_info(seq_dir)
    gt_path, det_path = info.path / "gt" / "gt.txt", info.path / "det" / "det.txt"
    return Sequence(info=info,
                    gt=read_gt(gt_path, info.num_frames) if gt and gt_path.is_file() else None,
                    det=read_det(det_path, info.num_frames) if det and det_path.is_file() else None)


def list_sequences(root: PathLike) -> List[Path]:
    """Sequence folders under a split folder (e.g. MOT17/train): those with seqinfo.ini or img1/."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "not a directory")
    return sorted(p for p in root.iterdir() if p.is_dir() and ((p / "seqinfo.ini").is_file() or
                                                                (p / "img1").is_dir()))


# --------------------------------------------------------------------------------------------- writing

def write_results(path: PathLike, frame, ids, boxes, scores=None, decimals: int = 2) -> Path:
    """Write tracker results (10 columns, sorted by frame then id). Everything is validated first;
    the file appears complete or not at all (temporary file + rename)."""
    path = Path(path)
    frame = np.asarray(frame).reshape(-1)
    ids = np.asarray(ids).reshape(-1)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.ones(len(frame)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    if not len(frame) == len(ids) == len(boxes) == len(scores):
        raise DataError(path, f"cannot write: {len(frame)} frames, {len(ids)} ids, {len(boxes)} boxes, "
                              f"{len(scores)} scores")
    # validated as written: a box that rounds to zero width would make an unreadable file
    rows = np.column_stack([frame, ids, np.round(boxes, decimals), scores]).astype(np.float64)
    order = np.lexsort((ids, frame))
    rows = rows[order]
    if not np.isfinite(rows).all():
        raise DataError(path, "cannot write non-finite values")
    try:
        _check_rows(path, rows, order.astype(np.int64) + 1, None, check_ids=True)
    except DataError as error:  # the file does not exist yet: name the row of the input instead
        raise DataError(path, f"cannot write: {error.message} (input row {error.line})") from None
    out = np.column_stack([rows, -np.ones((len(rows), 3))])
    fmt = ["%d", "%d"] + [f"%.{decimals}f"] * 4 + ["%.6g", "%d", "%d", "%d"]
    with atomic_write(path) as f:
        np.savetxt(f, out, fmt=fmt, delimiter=",")
    return path


_SEQ_NAME = re.compile(r"^[\w.\-]+$")


def results_path(results_dir: PathLike, sequence: str) -> Path:
    """Where the official tools look for a sequence's results: `<results>/<SEQ>.txt`."""
    if not _SEQ_NAME.match(sequence):
        raise DataError(results_dir, f"invalid sequence name {sequence!r}")
    return Path(results_dir) / f"{sequence}.txt"
