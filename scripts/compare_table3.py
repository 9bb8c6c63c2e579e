"""Per-seed Table 3 accuracies of a results store against the committed artefact: every
model the store holds, every seed and column.

    python scripts/compare_table3.py STORE [--reference docs/results/ecg/results.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def store_per_seed(store: Path) -> dict:
    """{model: {seed: {column: accuracy}}}: the finished store's results.json, or, for a store
    still training, the runs that have finished (``runs/MODEL/seedN/result.json``)."""
    store = Path(store)
    if (store / "results.json").is_file():
        return json.loads((store / "results.json").read_text())["meta"]["per_seed"]
    got = {}
    for path in sorted(store.glob("runs/*/seed*/result.json")):
        record = json.loads(path.read_text())
        if record.get("status", "done") == "done" and "accuracy" in record:
            got.setdefault(path.parent.parent.name, {})[path.parent.name[len("seed"):]] = record["accuracy"]
    return got


def compare_table3(store: Path, reference: Path) -> list[dict]:
    """One row per model of the store: values compared (the seeds the store has finished),
    identical, largest difference; a model of the reference the store lacks (nrnn_explicit is
    not part of make reproduce) is listed as such."""
    got = store_per_seed(store)
    ref = json.loads(Path(reference).read_text())["meta"]["per_seed"]
    rows = []
    for model in sorted(set(got) | set(ref)):
        if model not in got or model not in ref:
            rows.append({"model": model, "values": 0, "identical": None, "largest_difference": None,
                         "note": "not in the store" if model not in got else "not in the reference"})
            continue
        seeds = [s for s in ref[model] if s in got[model]]
        diffs = [abs(got[model][s][c] - ref[model][s][c]) for s in seeds for c in ref[model][s]]
        missing = len(ref[model]) - len(seeds)
        rows.append({"model": model, "values": len(diffs), "identical": bool(diffs) and all(d == 0 for d in diffs),
                     "largest_difference": max(diffs, default=float("nan")),
                     "note": f"{missing} seed(s) not finished in the store" if missing else ""})
    return rows


def markdown(rows: list[dict]) -> list[str]:
    lines = ["| model | values compared | identical | largest difference | note |", "|---|---|---|---|---|"]
    for r in rows:
        if r["identical"] is None:
            lines.append(f"| {r['model']} | - | - | - | {r['note']} |")
        else:
            lines.append(f"| {r['model']} | {r['values']} | {'yes' if r['identical'] else 'no'} | "
                         f"{r['largest_difference']:g} | {r['note']} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("--reference", type=Path, default=ROOT / "docs" / "results" / "ecg" / "results.json")
    args = ap.parse_args()
    print("\n".join(markdown(compare_table3(args.store, args.reference))))


if __name__ == "__main__":
    main()
