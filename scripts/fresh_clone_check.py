"""A fresh clone of a commit, as CI and a new user get it: `make reproduce` (per-seed accuracies
compared with the committed Table 3 artefact), `make test`, `make test-slow`, `make docs`, and
a wheel installed in a clean venv compiling and running the engine. Writes OUT/report.md and
OUT/report.json with each step's wall clock and outcome.

    python scripts/fresh_clone_check.py --commit HEAD --out docs/results/fresh_clone
        [--steps reproduce test test-slow docs wheel] [--workdir /tmp/fresh]

Times are of this machine while whatever else runs on it runs (say so beside them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from compare_table3 import compare_table3, markdown

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("reproduce", "test", "test-slow", "docs", "wheel")


def run(cmd, cwd, log) -> tuple[int, float, str]:
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=cwd, shell=isinstance(cmd, str), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    log.write(f"$ {cmd}\n{proc.stdout}\n")
    log.flush()
    tail = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()][-1:] or [""]
    return proc.returncode, time.time() - t0, tail[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commit", default="HEAD")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/noisyrnn_fresh_clone"))
    args = ap.parse_args()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.commit], capture_output=True,
                            text=True, check=True).stdout.strip()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    clone = args.workdir / "noisyrnn"
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "fresh_clone.log", "w")
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", commit], check=True)
    shared = ROOT.parent / "shared"
    if shared.is_dir() and not (args.workdir / "shared").exists():
        (args.workdir / "shared").symlink_to(shared)  # CI has ../shared beside the checkout
    steps = {}
    rc, secs, tail = run("make install", clone, log)
    steps["install"] = {"command": "make install", "exit": rc, "seconds": round(secs), "last_line": tail}
    commands = {"reproduce": "make reproduce", "test": "make test", "test-slow": "make test-slow", "docs": "make docs"}
    for step in args.steps:
        if step == "wheel":
            wheel_dir, venv = args.workdir / "wheel", args.workdir / "wheel_venv"
            cmd = (f"{sys.executable} -m pip wheel -q --no-deps -w {wheel_dir} . && {sys.executable} -m venv {venv} && "
                   f"{venv}/bin/pip install -q -c constraints.txt {wheel_dir}/noisyrnn-*.whl && "
                   f"cd {args.workdir} && {venv}/bin/python {clone}/scripts/wheel_check.py")
        else:
            cmd = commands[step]
        rc, secs, tail = run(cmd, clone, log)
        steps[step] = {"command": cmd if step != "wheel" else "pip wheel + clean venv + scripts/wheel_check.py",
                       "exit": rc, "seconds": round(secs), "last_line": tail}
        print(step, steps[step], flush=True)
    table3 = None
    if "reproduce" in args.steps and steps["reproduce"]["exit"] == 0:
        table3 = compare_table3(clone / "results" / "ecg", ROOT / "docs" / "results" / "ecg" / "results.json")
    report = {"commit": commit, "steps": steps, "table3_per_seed": table3}
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Fresh clone of {commit}", "",
             f"`python scripts/fresh_clone_check.py --commit {commit} --out {args.out}`: a `git clone` of the "
             "commit with `../shared` beside it, each step's wall clock on this 2-core machine (the "
             "background pixel-MNIST run held one core throughout).", "",
             "| step | command | exit | seconds | last line of output |", "|---|---|---|---|---|"]
    for name, s in steps.items():
        lines.append(f"| {name} | `{s['command']}` | {s['exit']} | {s['seconds']} | {s['last_line'].replace('|', '/')} |")
    if table3 is not None:
        lines += ["", "Table 3 per seed (`results/ecg/results.json` of the clone) against "
                  "`docs/results/ecg/results.json`:", ""] + markdown(table3)
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(s["exit"] == 0 for s in steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
