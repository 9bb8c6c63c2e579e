"""`make reproduce` killed with SIGKILL at three moments and resumed: is results.json what an
uninterrupted run gives?

    python scripts/kill_resume_reproduce.py --clone /tmp/fresh --reference docs/results/ecg/results.json \
        --out docs/results/reliability/kill_resume

In ``--clone`` (a fresh clone, set up with ``make install`` first) it runs ``make reproduce``
and SIGKILLs the whole process group (make, noisyrnn and its worker processes) (1) early, before
any run has a result, (2) in the middle of a row, when a run's training state is part-way
before its lr milestone, (3) just after the lr milestone of a run (its state's epoch is the
milestone's), then runs ``make reproduce`` again to the end and compares every model's per-seed
accuracies with ``--reference`` (the results.json of an uninterrupted run). Writes
``kill_resume.json`` and ``kill_resume.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from noisyrnn.errors import DataError
from noisyrnn.training.checkpoint import read_training_state


def state_epochs(store: Path) -> dict[str, int]:
    """{run folder: the epoch its committed training state holds}."""
    out = {}
    for p in store.glob("runs/*/*/state.safetensors"):
        try:
            out[str(p.parent.relative_to(store))] = read_training_state(p.parent)[0]["info"]["epoch"]
        except DataError:  # removed or replaced between the glob and the read
            continue
    return out


def results(store: Path) -> int:
    return len(list(store.glob("runs/*/seed*/result.json")))


def start(clone: Path, log):
    return subprocess.Popen(["make", "reproduce"], cwd=clone, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def kill(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clone", type=Path, required=True)
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--milestone", type=int, default=54, help="the recipes' lr milestone epoch (ECG: 54)")
    args = ap.parse_args()
    store = args.clone / "results" / "ecg"
    log = open(args.out.with_suffix(".log") if args.out.suffix else Path(str(args.out) + ".log"), "w")
    args.out.mkdir(parents=True, exist_ok=True)
    moments = [
        ("early: 20 s after the start, no run finished", lambda t, ep: t > 20),
        ("middle of a row: a run's state part-way, before its milestone",
         lambda t, ep: results(store) >= 10 and any(20 <= e < args.milestone - 10 for e in ep.values())),
        (f"just after the lr milestone of a run (its state holds epoch {args.milestone})",
         lambda t, ep: results(store) >= 20 and any(e == args.milestone for e in ep.values())),
    ]
    kills = []
    t_all = time.time()
    for what, when in moments:
        proc = start(args.clone, log)
        t0 = time.time()
        while proc.poll() is None:
            ep = state_epochs(store)
            if when(time.time() - t0, ep):
                kill(proc)
                kills.append({"moment": what, "after_seconds": round(time.time() - t0, 1), "results_done": results(store),
                              "states": ep})
                print(f"killed ({what}) after {time.time() - t0:.0f} s; {results(store)} results; states {ep}",
                      flush=True)
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"make reproduce finished before the moment {what!r}; nothing was killed")
    final = start(args.clone, log)
    rc = final.wait()
    got = json.loads((store / "results.json").read_text())["meta"]["per_seed"]
    ref = json.loads(args.reference.read_text())["meta"]["per_seed"]
    rows, identical = [], True
    for model in sorted(got):
        diffs = [abs(got[model][s][c] - ref[model][s][c]) for s in got[model] for c in got[model][s]]
        same = all(d == 0 for d in diffs)
        identical &= same
        rows.append({"model": model, "seeds": len(got[model]), "values": len(diffs), "identical": same,
                     "largest_difference": max(diffs)})
    report = {"kills": kills, "final_exit": rc, "wall_seconds": round(time.time() - t_all), "models": rows,
              "identical": identical, "reference": str(args.reference)}
    (args.out / "kill_resume.json").write_text(json.dumps(report, indent=2))
    lines = ["| kill | moment | seconds into that run | results done | run states (epoch) |", "|---|---|---|---|---|"]
    for i, k in enumerate(kills, 1):
        states = ", ".join(f"{r}: {e}" for r, e in sorted(k["states"].items()))
        lines.append(f"| {i} | {k['moment']} | {k['after_seconds']} | {k['results_done']} | {states} |")
    lines += ["", f"Final `make reproduce` exit status {rc}; per-seed accuracies against {args.reference}:", "",
              "| model | seeds | values compared | identical | largest difference |", "|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['seeds']} | {r['values']} | {r['identical']} | {r['largest_difference']:g} |"
              for r in rows]
    (args.out / "kill_resume.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
