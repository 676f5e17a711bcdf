"""What `trackformer track` can read: a MOTChallenge sequence folder, a MOTChallenge root (a folder of
sequences, or of split folders of sequences), a folder of images, or a video file. Each becomes a
`Source` yielding `(frame_number, PIL image)` with 1-based frame numbers.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

from PIL import Image

from trackformer.data.frame_range import FrameRange, split_entry
from trackformer.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass
class Source:
    name: str
    frames: Callable[[], Iterator[Tuple[int, Image.Image]]]  # a fresh iterator per call
    num_frames: int
    fps: float = 10.0
    seq_dir: Optional[Path] = None  # a MOTChallenge sequence: gt and det may exist
    has_gt: bool = False
    frame_range: Optional[FrameRange] = None  # part of a sequence (resolved); None: all its frames

    def frame_numbers(self) -> range:
        """The 1-based numbers of the frames `frames()` yields (a sequence's known frames)."""
        if self.frame_range is not None:
            return self.frame_range.frames()
        return range(1, self.num_frames + 1)

    def scored_name(self) -> str:
        """The name the evaluator scores: `<SEQ>` or `<SEQ>:FIRST-LAST`."""
        return self.seq_dir.name + (f":{self.frame_range}" if self.frame_range is not None else "")


def _image_frames(files: List[Path], first: int = 1):
    def frames():
        for i, path in enumerate(files):
            try:
                with Image.open(path) as im:
                    yield first + i, im.convert("RGB")
            except OSError as e:
                raise DataError(path, f"cannot read image: {e}") from None
    return frames


def sequence_source(seq_dir: Path, max_frames: Optional[int] = None, frames: Optional[FrameRange] = None) -> Source:
    """A MOTChallenge sequence folder (img1/, seqinfo.ini; gt/ and det/ when present); `frames`: only
    that part of it (frame numbers kept), `max_frames`: only the first N of those."""
    from trackformer.data import mot

    seq_dir = Path(seq_dir)
    info = mot.read_sequence_info(seq_dir)
    if frames is not None:
        frames = frames.resolve(len(info.frame_files), "--frames")
        if max_frames:
            frames = FrameRange(frames.first, min(frames.last, frames.first + max_frames - 1))
    elif max_frames and max_frames < len(info.frame_files):
        frames = FrameRange(1, max_frames)
    files = info.frame_files[frames.first - 1:frames.last] if frames is not None else info.frame_files
    return Source(info.name if info.name else seq_dir.name, _image_frames(files, frames.first if frames else 1),
                  len(files), float(info.frame_rate or 10.0), seq_dir, (seq_dir / "gt" / "gt.txt").is_file(), frames)


def _video(path: Path, max_frames: Optional[int]) -> Source:
    try:
        import cv2
    except ImportError:
        raise DataError(path, "reading a video needs OpenCV (pip install opencv-python-headless); "
                              "or extract its frames into a folder") from None
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(path, "cannot open video")
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 10.0)
    cap.release()
    if max_frames:
        n = min(n, max_frames) if n else max_frames

    def frames():
        cap = cv2.VideoCapture(str(path))
        i = 0
        try:
            while not max_frames or i < max_frames:
                ok, bgr = cap.read()
                if not ok:
                    break
                i += 1
                yield i, Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        finally:
            cap.release()
    return Source(path.stem, frames, n, fps)


def open_inputs(path, max_frames: Optional[int] = None, frames: Optional[FrameRange] = None) -> List[Source]:
    """Sources for a sequence folder, a MOTChallenge root, an image folder or a video file; `frames`
    (a part of each MOTChallenge sequence) also comes as a `SEQ_DIR:FIRST-LAST` suffix of `path`."""
    path, suffix = split_entry(str(path), "--input")
    path, frames = Path(path), frames or suffix
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_file():
        if path.suffix.lower() not in VIDEO_EXTS:
            raise DataError(path, f"not a video file ({', '.join(VIDEO_EXTS)}) or a folder")
        return [_video(path, max_frames)]
    if (path / "img1").is_dir():
        return [sequence_source(path, max_frames, frames)]
    seqs = sorted(p for p in path.iterdir() if (p / "img1").is_dir())
    if not seqs:  # a MOT root with split folders (train/, test/)
        seqs = sorted(q for p in sorted(path.iterdir()) if p.is_dir() for q in p.iterdir() if (q / "img1").is_dir())
    if seqs:
        return [sequence_source(s, max_frames, frames) for s in seqs]
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise DataError(path, "no MOTChallenge sequence, image or video found here")
    files = files[:max_frames] if max_frames else files
    return [Source(path.name, _image_frames(files), len(files))]
