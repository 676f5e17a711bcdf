"""Rendering tracks: boxes coloured and labelled by track id, with a short trail of each track's
foot point over its last `trail` frames, written as an animated GIF (Pillow) or, for .mp4/.avi, a
video (OpenCV, when installed)."""
import colorsys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from PIL import Image, ImageDraw

from trackformer.errors import DataError


def colour(track_id: int) -> Tuple[int, int, int]:
    """A stable, well-spread colour per id (golden-ratio hue steps)."""
    h = (track_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw(image: Image.Image, rows: Iterable, scale: int = 1, trails: Optional[Dict[int, List]] = None) -> Image.Image:
    """Rows `(frame, id, x, y, w, h, score)` in MOTChallenge 1-based pixels, drawn on a copy
    enlarged `scale` times (small synthetic frames would leave no room for the labels); `trails`:
    id -> the foot points (x, y) of its recent frames, drawn as a line in the id's colour."""
    im = image.convert("RGB")
    im = im.resize((im.width * scale, im.height * scale), Image.NEAREST) if scale > 1 else im.copy()
    d = ImageDraw.Draw(im)
    width = max(1, round(max(im.size) / 400))
    for tid, points in (trails or {}).items():
        if len(points) > 1:
            d.line([((x - 1) * scale, (y - 1) * scale) for x, y in points], fill=colour(tid), width=width + 1)
    for r in rows:
        tid = int(r[1])
        x, y, w, h = ((r[2] - 1) * scale, (r[3] - 1) * scale, r[4] * scale, r[5] * scale)
        c = colour(tid)
        d.rectangle([x, y, x + w, y + h], outline=c, width=width)
        label = str(tid)
        tw, th = d.textbbox((0, 0), label)[2:]
        d.rectangle([x, y - th - 2, x + tw + 2, y], fill=c)
        d.text((x + 1, y - th - 1), label, fill=(0, 0, 0))
    return im


def render(frames: Iterable, rows: List, out_path, fps: float = 10.0, max_width: int = 640,
           min_width: int = 320, trail: int = 0) -> Path:
    """Draws `rows` on `frames` (`(frame_number, PIL image)`), downscaled to `max_width`, small
    frames enlarged by an integer factor towards `min_width`; `trail` > 0 adds each track's foot
    points of its last `trail` frames. A video is written frame by frame (any length)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    by_frame: Dict[int, List] = {}
    for r in rows:
        by_frame.setdefault(int(r[0]), []).append(r)
    sink = _GifSink(out_path, fps) if out_path.suffix.lower() == ".gif" else _VideoSink(out_path, fps)
    for f, image in frames:
        trails = None
        if trail > 0:
            trails = {}
            for g in range(f - trail, f + 1):
                for r in by_frame.get(g, []):
                    trails.setdefault(int(r[1]), []).append((r[2] + r[4] / 2, r[3] + r[5]))
        im = draw(image, by_frame.get(f, []), scale=max(1, min_width // image.width), trails=trails)
        if im.width > max_width:
            im = im.resize((max_width, round(im.height * max_width / im.width)), Image.BILINEAR)
        sink.add(im)
    return sink.close()


class _GifSink:
    def __init__(self, path: Path, fps: float):
        self.path, self.fps, self.frames = path, fps, []

    def add(self, im):
        self.frames.append(im)

    def close(self) -> Path:
        if not self.frames:
            raise DataError(self.path, "nothing to render: no frames")
        self.frames[0].save(self.path, save_all=True, append_images=self.frames[1:], loop=0, optimize=False,
                            duration=max(20, round(1000 / self.fps)))
        return self.path


class _VideoSink:
    """MP4 (mp4v) or AVI (MJPG) through OpenCV, opened at the first frame's size."""

    def __init__(self, path: Path, fps: float):
        try:
            import cv2
        except ImportError:
            raise DataError(path, "writing a video needs OpenCV (pip install opencv-python-headless); "
                                  "render to .gif instead") from None
        self.cv2, self.path, self.fps, self.writer = cv2, path, fps, None

    def add(self, im):
        import numpy as np

        cv2 = self.cv2
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() == ".mp4" else "MJPG"))
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, im.size)
            if not self.writer.isOpened():
                raise DataError(self.path, "OpenCV cannot write this video format; render to .gif instead")
        self.writer.write(cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR))

    def close(self) -> Path:
        if self.writer is None:
            raise DataError(self.path, "nothing to render: no frames")
        self.writer.release()
        return self.path
