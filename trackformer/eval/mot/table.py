"""The per-sequence table printed by `trackformer eval mot`."""
from typing import Dict, Sequence

COLUMNS = ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDP", "IDR", "IDSW", "Frag", "FP", "FN",
           "MT", "PT", "ML")
COUNTS = {"IDSW", "Frag", "FP", "FN", "MT", "PT", "ML", "IDTP", "IDFN", "IDFP", "CLR_TP", "GT_Dets", "Dets",
          "GT_IDs", "IDs"}


def format_table(results: Dict[str, Dict[str, float]], columns: Sequence[str] = COLUMNS) -> str:
    """Rows are sequences then COMBINED; fractions are shown as percentages with two decimals."""
    def cell(key, value):
        return f"{int(value)}" if key in COUNTS else f"{100 * value:.2f}"

    names = list(results)
    width = max(len("sequence"), *(len(n) for n in names))
    cells = [[cell(c, results[n][c]) for c in columns] for n in names]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join([f"{'sequence':<{width}}"] + [f"{c:>{w}}" for c, w in zip(columns, widths)])]
    for name, row in zip(names, cells):
        if name == "COMBINED" and len(names) > 1:
            lines.append("-" * len(lines[0]))
        lines.append("  ".join([f"{name:<{width}}"] + [f"{v:>{w}}" for v, w in zip(row, widths)]))
    return "\n".join(lines)
