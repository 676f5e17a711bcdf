"""`trackformer eval mot`: HOTA, CLEAR and Identity of tracker results on MOTChallenge ground truth.

    trackformer eval mot --gt MOT17/train --results runs/x/results [--benchmark MOT17]
                         [--sequences MOT17-02-FRCNN ...] [--json OUT|-] [--missing-ok]

The table goes to stderr (human output), the JSON to OUT or, with `--json -`, to stdout.
Import-light: the evaluation package loads only when the command runs.
"""
import json
import sys

from ..atomic import write_text_atomic
from ..hookspecs import hookimpl


def add_arguments(parser):
    parser.add_argument("--gt", required=True, metavar="GT_ROOT",
                        help="folder of sequence folders, each with gt/gt.txt and seqinfo.ini (e.g. MOT17/train)")
    parser.add_argument("--results", required=True, metavar="RESULTS_DIR",
                        help="folder with one <SEQUENCE>.txt per sequence (10 columns, MOTChallenge format)")
    parser.add_argument("--benchmark", default="MOT17",  # checked by the evaluator (eval.mot.prepare)
                        help="preprocessing: MOT16/17/20 drop tracker boxes on distractors; MOT15 none "
                             "(default MOT17)")
    parser.add_argument("--sequences", nargs="+", metavar="SEQ",
                        help="evaluate only these sequences; SEQ:FIRST-LAST scores only those frames (e.g. TUD-Campus:37-71)")
    parser.add_argument("--json", metavar="OUT", help="write all metrics as JSON to OUT ('-' for stdout)")
    parser.add_argument("--missing-ok", action="store_true",
                        help="score a sequence without a results file as an empty tracking instead of failing")


def _write_json(path: str, payload: dict):
    text = json.dumps(payload, indent=2, sort_keys=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    write_text_atomic(path, text)


def handler(args) -> int:
    from ..eval.mot import evaluate_mot, format_table

    results = evaluate_mot(args.gt, args.results, benchmark=args.benchmark, sequences=args.sequences,
                           missing_ok=args.missing_ok)
    print(format_table(results), file=sys.stderr)
    if args.json:
        _write_json(args.json, {"benchmark": args.benchmark, "gt": str(args.gt), "results": str(args.results),
                                "metrics": results})
    return 0


@hookimpl
def register_commands(register):
    register("eval mot", handler, add_arguments=add_arguments,
             help="MOTChallenge evaluation: HOTA, CLEAR (MOTA) and Identity (IDF1) metrics")
