"""Rendering tracks: boxes coloured and labelled by track id, written as an animated GIF (Pillow)
or, for .mp4/.avi, a video (OpenCV, when installed)."""
import colorsys
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

from PIL import Image, ImageDraw

from trackformer.errors import DataError


def colour(track_id: int) -> Tuple[int, int, int]:
    """A stable, well-spread colour per id (golden-ratio hue steps)."""
    h = (track_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw(image: Image.Image, rows: Iterable, scale: int = 1) -> Image.Image:
    """Rows `(frame, id, x, y, w, h, score)` in MOTChallenge 1-based pixels, drawn on a copy
    enlarged `scale` times (small synthetic frames would leave no room for the labels)."""
    im = image.convert("RGB")
    im = im.resize((im.width * scale, im.height * scale), Image.NEAREST) if scale > 1 else im.copy()
    d = ImageDraw.Draw(im)
    width = max(1, round(max(im.size) / 400))
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
           min_width: int = 320) -> Path:
    """Draws `rows` on `frames` (`(frame_number, PIL image)`), downscaled to `max_width`, small
    frames enlarged by an integer factor towards `min_width`."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    by_frame: Dict[int, List] = {}
    for r in rows:
        by_frame.setdefault(int(r[0]), []).append(r)
    drawn = []
    for f, image in frames:
        im = draw(image, by_frame.get(f, []), scale=max(1, min_width // image.width))
        if im.width > max_width:
            im = im.resize((max_width, round(im.height * max_width / im.width)), Image.BILINEAR)
        drawn.append(im)
    if not drawn:
        raise DataError(out_path, "nothing to render: no frames")
    if out_path.suffix.lower() == ".gif":
        drawn[0].save(out_path, save_all=True, append_images=drawn[1:], duration=max(20, round(1000 / fps)),
                      loop=0, optimize=False)
        return out_path
    try:
        import cv2
        import numpy as np
    except ImportError:
        raise DataError(out_path, "writing a video needs OpenCV; render to .gif instead") from None
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if out_path.suffix.lower() == ".mp4" else "MJPG"))
    writer = cv2.VideoWriter(str(out_path), fourcc, fps, drawn[0].size)
    if not writer.isOpened():
        raise DataError(out_path, "OpenCV cannot write this video format; render to .gif instead")
    for im in drawn:
        writer.write(cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR))
    writer.release()
    return out_path
