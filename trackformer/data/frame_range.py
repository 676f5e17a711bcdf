"""Part of a sequence: frames `first..last` (1-based, inclusive), for training on the start of a clip
and tracking and scoring the rest.

Spelled `37-71` (or `37-` to the end) on its own, or after a sequence: `TUD-Campus:37-71`, which is
how data-set entries, evaluators and `trackformer track --frames` name them. Restricting a file's
rows keeps the sequence's own frame numbers (results files stay readable next to the images);
scoring renumbers the range from 1 and sets the sequence length to the range's, as the official
evaluation needs ("frames 1..seqLength"), so a run over 37-71 is charged nothing for 1-36.
"""
import re
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ..errors import ConfigError

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d*)\s*$")


@dataclass(frozen=True)
class FrameRange:
    first: int = 1
    last: Optional[int] = None              # inclusive; None: to the end of the sequence

    def __str__(self):
        return f"{self.first}-{'' if self.last is None else self.last}"

    def resolve(self, num_frames: int, where: str = "frames") -> "FrameRange":
        """This range with `last` filled in, checked against a sequence of `num_frames` frames."""
        last = num_frames if self.last is None else self.last
        if not 1 <= self.first <= last <= num_frames:
            raise ConfigError(where, f"frames {self.first}-{last} are not inside the sequence (frames 1-{num_frames})")
        return FrameRange(self.first, last)

    def __len__(self):
        if self.last is None:
            raise ValueError("an open range has no length: resolve() it first")
        return self.last - self.first + 1

    def frames(self) -> range:
        """The 1-based frame numbers (a resolved range)."""
        return range(self.first, self.first + len(self))

    def mask(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        return (frame >= self.first) & (frame <= (np.inf if self.last is None else self.last))

    def restrict(self, tracks, renumber: bool = False):
        """The rows of `tracks` (data.mot.Tracks) inside the range; with `renumber`, frames from 1."""
        out = tracks.select(self.mask(tracks.frame))
        if renumber:
            out.frame = out.frame - (self.first - 1)
        return out


def parse_frame_range(text: str, where: str = "frames") -> FrameRange:
    """`"37-71"` -> FrameRange(37, 71); `"37-"` -> FrameRange(37, None)."""
    m = _RANGE.match(str(text))
    if not m:
        raise ConfigError(where, f"{text!r} is not a frame range: write FIRST-LAST, e.g. 37-71 (or 37- to the end)")
    first, last = int(m.group(1)), int(m.group(2)) if m.group(2) else None
    if first < 1 or (last is not None and last < first):
        raise ConfigError(where, f"{text!r}: frames run from 1 and FIRST <= LAST")
    return FrameRange(first, last)


def split_entry(entry: str, where: str = "frames") -> Tuple[str, Optional[FrameRange]]:
    """`"TUD-Campus:37-71"` -> ("TUD-Campus", FrameRange(37, 71)); no `:RANGE` suffix -> (entry, None)."""
    head, sep, tail = str(entry).rpartition(":")
    if not sep or not _RANGE.match(tail) or not head:
        return str(entry), None
    return head, parse_frame_range(tail, where)
