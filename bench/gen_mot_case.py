"""Generate a MOT17-train-sized synthetic evaluation case: ground truth and one tracker's results.

Writes the MOTChallenge layout the official tools read:

    OUT/gt/<SEQ>/seqinfo.ini, OUT/gt/<SEQ>/gt/gt.txt          (9 columns, rows sorted by id as in MOT17)
    OUT/trackers/<TRACKER>/<SEQ>.txt                            (10 columns, sorted by frame)

The default is 5,000 frames split into 5 sequences with 50 pedestrians visible at any time (objects
are born and die, so a sequence holds a few hundred identities), plus distractor and non-pedestrian
objects so that the MOT17 preprocessing has work to do. The tracker sees each pedestrian with box
noise, misses in bursts, identity switches (fresh ids and swaps between neighbours) and false
positives, and it also tracks some distractors, which the preprocessing must remove.

    python bench/gen_mot_case.py OUT [--frames 5000] [--sequences 5] [--objects 50] [--seed 0]
"""
import argparse
from pathlib import Path

import numpy as np

IMG_W, IMG_H = 1920, 1080
# class, consider flag of the non-pedestrian objects, drawn per object (MOT17 class ids)
EXTRA_CLASSES = [(2, 0), (7, 0), (8, 0), (12, 0), (6, 0), (3, 0), (9, 0), (4, 0)]


def _walk(rng, length):
    """A box drifting over the image for `length` frames: [length, 4] as x, y, w, h."""
    w = rng.uniform(25, 130)
    h = w * rng.uniform(2.0, 3.0)
    start = np.array([rng.uniform(-0.5 * w, IMG_W - 0.5 * w), rng.uniform(0, IMG_H - h)])
    velocity = rng.normal(0, 2.5, size=2)
    steps = velocity + np.cumsum(rng.normal(0, 0.4, size=(length, 2)), axis=0)
    xy = start + np.cumsum(steps, axis=0)
    scale = np.exp(np.cumsum(rng.normal(0, 0.004, size=length)))
    return np.column_stack([xy, w * scale, h * scale])


def _lifetimes(rng, num_frames, concurrent, mean_life):
    """(first_frame, last_frame) of objects such that about `concurrent` are alive at every frame."""
    spans = []
    for _ in range(concurrent):
        t = 1 - int(rng.integers(0, mean_life))   # some objects are already there at frame 1
        while t <= num_frames:
            life = int(rng.integers(mean_life // 4, 2 * mean_life))
            spans.append((max(t, 1), min(t + life - 1, num_frames)))
            t += life + int(rng.integers(0, 10))
    return [s for s in spans if s[0] <= s[1]]


def make_sequence(rng, num_frames, objects, mean_life=300):
    """Returns gt rows [N, 9] and tracker rows [M, 10] for one sequence."""
    gt_rows, trk_rows = [], []
    next_track = [1]

    def new_track():
        next_track[0] += 1
        return next_track[0]

    spans = [(s, e, 1, 1) for s, e in _lifetimes(rng, num_frames, objects, mean_life)]
    extras = _lifetimes(rng, num_frames, max(1, objects // 6), mean_life)
    spans += [(s, e) + EXTRA_CLASSES[int(rng.integers(len(EXTRA_CLASSES)))] for s, e in extras]
    for gt_id, (first, last, cls, consider) in enumerate(spans, start=1):
        frames = np.arange(first, last + 1)
        boxes = _walk(rng, len(frames))
        if cls == 1 and rng.random() < 0.03:
            consider = 0                                   # a pedestrian the benchmark ignores
        vis = np.clip(rng.normal(0.7, 0.3, size=len(frames)), 0, 1)
        gt_rows.append(np.column_stack([frames, np.full(len(frames), gt_id), boxes,
                                        np.full(len(frames), consider), np.full(len(frames), cls), vis]))
        if cls != 1 and (cls not in (2, 7, 8, 12) or rng.random() < 0.5):
            continue                                       # trackers see pedestrians and some distractors
        # misses come in bursts: a two-state chain, seen -> missed with 3%, missed -> seen with 25%
        seen = np.ones(len(frames), bool)
        state = True
        for i in range(len(frames)):
            state = rng.random() > 0.03 if state else rng.random() < 0.25
            seen[i] = state
        ids = np.empty(len(frames), np.int64)
        current = new_track()
        for i in range(len(frames)):
            if rng.random() < 0.002 or (i > 0 and not seen[i - 1] and seen[i] and rng.random() < 0.3):
                current = new_track()                      # identity switch / fragmentation
            ids[i] = current
        noise = rng.normal(0, 0.06, size=(len(frames), 4)) * boxes[:, [2, 3, 2, 3]]
        noisy = boxes + noise
        noisy[:, 2:] = np.maximum(noisy[:, 2:], 2.0)
        conf = rng.uniform(0.3, 1.0, size=len(frames))
        trk_rows.append(np.column_stack([frames, ids, noisy, conf, -np.ones((len(frames), 3))])[seen])
    trk = np.concatenate(trk_rows)
    # swaps: exchange the ids of two tracks from some frame on, within frames where both exist
    for _ in range(num_frames // 100):
        t = int(rng.integers(1, num_frames + 1))
        in_t = np.flatnonzero(trk[:, 0] == t)
        if len(in_t) < 2:
            continue
        a, b = trk[rng.choice(in_t, 2, replace=False), 1]
        later = trk[:, 0] >= t
        is_a, is_b = later & (trk[:, 1] == a), later & (trk[:, 1] == b)
        trk[is_a, 1], trk[is_b, 1] = b, a
    # false positives: short tracklets of random boxes, about 4 per frame
    fps = []
    for _ in range(num_frames * 4 // 15):
        length = int(rng.integers(1, 30))
        first = int(rng.integers(1, num_frames + 1))
        frames = np.arange(first, min(first + length, num_frames + 1))
        boxes = _walk(rng, len(frames))
        fps.append(np.column_stack([frames, np.full(len(frames), new_track()), boxes,
                                    rng.uniform(0.3, 0.8, size=len(frames)), -np.ones((len(frames), 3))]))
    trk = np.concatenate([trk] + fps)
    # a tracker never reports one id twice in a frame: a swap can collide with itself, drop repeats
    trk = trk[np.lexsort((trk[:, 1], trk[:, 0]))]
    _, first_of = np.unique(trk[:, 0] * (trk[:, 1].max() + 1) + trk[:, 1], return_index=True)
    trk = trk[np.sort(first_of)]
    gt = np.concatenate(gt_rows)
    return gt[np.lexsort((gt[:, 0], gt[:, 1]))], trk


def write_case(out, frames=5000, sequences=5, objects=50, seed=0, tracker="tracker"):
    out = Path(out)
    rng = np.random.default_rng(seed)
    lengths = [frames // sequences + (i < frames % sequences) for i in range(sequences)]
    names = []
    for i, length in enumerate(lengths):
        name = f"SYN-{i + 1:02d}"
        names.append(name)
        gt, trk = make_sequence(rng, length, objects)
        (out / "gt" / name / "gt").mkdir(parents=True, exist_ok=True)
        (out / "gt" / name / "seqinfo.ini").write_text(
            f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={length}\n"
            f"imWidth={IMG_W}\nimHeight={IMG_H}\nimExt=.jpg\n")
        np.savetxt(out / "gt" / name / "gt" / "gt.txt", gt,
                   fmt=["%d", "%d", "%.2f", "%.2f", "%.2f", "%.2f", "%d", "%d", "%.5f"], delimiter=",")
        (out / "trackers" / tracker).mkdir(parents=True, exist_ok=True)
        np.savetxt(out / "trackers" / tracker / f"{name}.txt", trk,
                   fmt=["%d", "%d", "%.2f", "%.2f", "%.2f", "%.2f", "%.4f", "%d", "%d", "%d"], delimiter=",")
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--sequences", type=int, default=5)
    parser.add_argument("--objects", type=int, default=50, help="pedestrians visible at any time")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = write_case(args.out, args.frames, args.sequences, args.objects, args.seed)
    print(f"wrote {len(names)} sequences ({args.frames} frames) to {args.out}")


if __name__ == "__main__":
    main()
