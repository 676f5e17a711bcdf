"""MOT evaluation speed and memory: ours vs TrackEval vs motmetrics on one generated case, one run.

    python bench/bench_mot_eval.py [CASE] [--frames 5000 --sequences 5 --objects 50] [--repeat 3]

CASE is a folder written by bench/gen_mot_case.py (generated into a temporary folder if absent).
Each tool runs in its own subprocess (single-threaded BLAS), so peak memory (ru_maxrss) is its own;
time is the evaluation alone, files included, imports excluded; best of --repeat. Ours and TrackEval
compute HOTA + CLEAR + Identity with MOT17 preprocessing and must agree to 1e-9. motmetrics has no
HOTA and no distractor preprocessing: it runs as its own MOTChallenge app does (gt with consider >= 1,
every class) and is compared with ours under MOT15 rules, which are the same. Its
`compare_to_groundtruth` needs `np.asfarray`, gone in NumPy 2, so the IoU distances here are our
own few lines; its `compute_many(generate_overall=True)` needs `DataFrame.append`, gone in pandas 2,
so sequences are computed one by one.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
KEYS = ["HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDP", "IDR", "IDSW", "Frag", "FP", "FN", "MT",
        "PT", "ML"]
TE = {**{k: ("HOTA", k) for k in ("HOTA", "DetA", "AssA", "LocA")},
      **{k: ("CLEAR", k) for k in ("MOTA", "MOTP", "IDSW", "Frag", "MT", "PT", "ML")},
      "FP": ("CLEAR", "CLR_FP"), "FN": ("CLEAR", "CLR_FN"),
      **{k: ("Identity", k) for k in ("IDF1", "IDP", "IDR")}}
MM = {"MOTA": "mota", "IDF1": "idf1", "IDP": "idp", "IDR": "idr", "IDSW": "num_switches", "FP": "num_false_positives",
      "FN": "num_misses", "MT": "mostly_tracked", "Frag": "num_fragmentations"}


def _rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


# ------------------------------------------------------------------------------------------ the workers

def run_ours(case):
    from trackformer.eval.mot import evaluate_mot
    return lambda: evaluate_mot(case / "gt", case / "trackers" / "tracker", benchmark="MOT17")


def run_trackeval(case):
    import contextlib
    import io

    import numpy as np
    import trackeval

    def evaluate():
        seqs = sorted(p.name for p in (case / "gt").iterdir())
        config = dict(GT_FOLDER=str(case / "gt"), TRACKERS_FOLDER=str(case / "trackers"),
                      TRACKERS_TO_EVAL=["tracker"], TRACKER_SUB_FOLDER="", SKIP_SPLIT_FOL=True,
                      SEQ_INFO={s: None for s in seqs}, BENCHMARK="MOT17", PRINT_CONFIG=False)
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator = trackeval.Evaluator({"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False,
                                             "TIME_PROGRESS": False, "OUTPUT_SUMMARY": False,
                                             "OUTPUT_DETAILED": False, "PLOT_CURVES": False})
            res, _ = evaluator.evaluate([trackeval.datasets.MotChallenge2DBox(config)],
                                        [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
                                         trackeval.metrics.Identity({"PRINT_CONFIG": False})])
        out = {}
        for seq, r in res["MotChallenge2DBox"]["tracker"].items():
            r = r["pedestrian"]
            out["COMBINED" if seq == "COMBINED_SEQ" else seq] = {
                k: float(np.mean(r[m][f])) for k, (m, f) in TE.items()}
        return out
    return evaluate


def run_motmetrics(case):
    import motmetrics as mm
    import numpy as np

    def iou_distance(a, b):
        # motmetrics.distances.iou_matrix(a, b, max_iou=0.5) without np.asfarray
        a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
        lo = np.maximum(a[:, None, :2], b[None, :, :2])
        hi = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
        union = a[:, None, 2] * a[:, None, 3] + b[None, :, 2] * b[None, :, 3] - inter
        dist = 1 - inter / union
        dist[dist > 0.5] = np.nan
        return dist

    def evaluate():
        metrics = mm.metrics.create()
        out = {}
        for seq_dir in sorted((case / "gt").iterdir()):
            gt = mm.io.loadtxt(seq_dir / "gt" / "gt.txt", fmt="mot15-2D", min_confidence=1)
            ts = mm.io.loadtxt(case / "trackers" / "tracker" / f"{seq_dir.name}.txt", fmt="mot15-2D")
            acc = mm.MOTAccumulator()
            cols = ["X", "Y", "Width", "Height"]
            gt_frames = dict(tuple(gt.groupby(level=0)))
            ts_frames = dict(tuple(ts.groupby(level=0)))
            empty = gt.iloc[:0]
            for frame in sorted(set(gt_frames) | set(ts_frames)):
                g, t = gt_frames.get(frame, empty), ts_frames.get(frame, empty)
                acc.update(g.index.get_level_values(1).values, t.index.get_level_values(1).values,
                           iou_distance(g[cols].values, t[cols].values), frameid=frame)
            out[seq_dir.name] = {k: float(v) for k, v in metrics.compute(
                acc, metrics=list(MM.values()), return_dataframe=False).items()}
        return out
    return evaluate


def worker(name, case, repeat, out):
    make = {"ours": run_ours, "trackeval": run_trackeval, "motmetrics": run_motmetrics}[name]
    evaluate = make(Path(case))
    rss_before = _rss_kb()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        metrics = evaluate()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(out).write_text(json.dumps({"times": times, "rss_before_kb": rss_before, "peak_rss_kb": peak,
                                     "metrics": metrics}))


# ------------------------------------------------------------------------------------------ the driver

def spawn(name, case, repeat):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    cmd = [sys.executable, __file__, "--worker", name, str(case), "--repeat", str(repeat), "--out", out]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    result = json.loads(Path(out).read_text())
    os.unlink(out)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", nargs="?")
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--sequences", type=int, default=5)
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-motmetrics", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.case, args.repeat, args.out)

    tmp = None
    case = Path(args.case) if args.case else None
    if case is None or not (case / "gt").is_dir():
        sys.path.insert(0, str(HERE))
        from gen_mot_case import write_case
        if case is None:
            tmp = tempfile.TemporaryDirectory()
            case = Path(tmp.name)
        write_case(case, args.frames, args.sequences, args.objects)
    gt_rows = sum(1 for p in (case / "gt").glob("*/gt/gt.txt") for _ in open(p))
    trk_rows = sum(1 for p in (case / "trackers" / "tracker").glob("*.txt") for _ in open(p))
    print(f"case {case}: {len(list((case / 'gt').iterdir()))} sequences, {gt_rows} gt rows, "
          f"{trk_rows} tracker rows; best of {args.repeat}")

    tools = ["ours", "trackeval"] + ([] if args.no_motmetrics else ["motmetrics"])
    runs = {name: spawn(name, case, args.repeat) for name in tools}
    ours, te = runs["ours"]["metrics"], runs["trackeval"]["metrics"]

    worst = 0.0
    for seq in te:
        for k in KEYS:
            a, b = ours[seq][k], te[seq][k]
            worst = max(worst, abs(a - b) / max(abs(b), 1e-300) if a != b else 0.0)
    print(f"\nours vs TrackEval, {len(KEYS)} metrics x {len(te)} rows: max relative difference {worst:.2e} "
          f"({'identical' if worst <= 1e-9 else 'DIFFERENT'})")
    c = ours["COMBINED"]
    print("COMBINED " + "  ".join(f"{k} {c[k]:.4f}" if isinstance(c[k], float) and abs(c[k]) <= 1 else
                                  f"{k} {c[k]:g}" for k in KEYS))

    if "motmetrics" in runs:
        sys.path.insert(0, str(HERE.parent))
        from trackformer.eval.mot import evaluate_mot
        ours15 = evaluate_mot(case / "gt", case / "trackers" / "tracker", benchmark="MOT15")
        print("\nmotmetrics vs ours with the same (MOT15) rules, summed over sequences / first sequence:")
        mm_runs = runs["motmetrics"]["metrics"]
        first = sorted(mm_runs)[0]
        for k, mk in MM.items():
            total = sum(r[mk] for r in mm_runs.values()) if k not in ("MOTA", "IDF1", "IDP", "IDR") else None
            ours_total = sum(ours15[s][k] for s in mm_runs) if total is not None else None
            line = f"  {k:<5} {first}: motmetrics {mm_runs[first][mk]:.6g}  ours {ours15[first][k]:.6g}"
            if total is not None:
                line += f"   all: motmetrics {total:g}  ours {ours_total:g}"
            print(line)

    print(f"\n{'tool':<11} {'time s':>8} {'x ours':>7} {'peak RSS MB':>12} {'eval RSS MB':>12}")
    t_ours = min(runs["ours"]["times"])
    for name, r in runs.items():
        t = min(r["times"])
        print(f"{name:<11} {t:8.3f} {t / t_ours:7.2f} {r['peak_rss_kb'] / 1024:12.1f} "
              f"{(r['peak_rss_kb'] - r['rss_before_kb']) / 1024:12.1f}")
    print(f"\ntime ours / TrackEval = {t_ours / min(runs['trackeval']['times']):.3f}"
          + (f", ours / motmetrics = {t_ours / min(runs['motmetrics']['times']):.3f}" if "motmetrics" in runs else ""))
    print(f"peak memory ours / TrackEval = {runs['ours']['peak_rss_kb'] / runs['trackeval']['peak_rss_kb']:.3f} "
          f"(process peak RSS, imports included)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
