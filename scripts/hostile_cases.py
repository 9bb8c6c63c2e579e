"""Bad and careless inputs, tried as a user would: each case's exit status, its message and
whether it wrote anything, for the table of the reliability issue.

    python scripts/hostile_cases.py --out docs/results/reliability/after
    python scripts/hostile_cases.py --src OLD_CHECKOUT/src --out docs/results/reliability/before
    python scripts/hostile_cases.py --combine BEFORE/cases.json AFTER/cases.json --out docs/results/reliability

``--src`` runs another checkout's package (e.g. a ``git worktree`` of an older commit) with
this script's cases. Each case runs in its own process in a fresh folder, under an address-space
limit (``--memory-gb``, default 6) and a time limit, so a case that would exhaust the machine
is reported as such instead of doing it. Writes ``cases.json`` and ``cases.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SETUP = r'''
import json, os, sys
import numpy as np
rng = np.random.default_rng(0)

def npz(path, n=40, T=12, d=1, labels=None, complex_=False, T_long=None):
    y = np.asarray(labels) if labels is not None else np.array(["a", "b"] * (n // 2))
    n = len(y)
    X = rng.normal(size=(n, T_long or T, d))
    if complex_:
        X = X + 1j * rng.normal(size=X.shape)
    np.savez(path, X=X, y=y)

def train(out, data="d.npz", extra=()):
    from noisyrnn.cli import main
    rc = main(["train", "--data", data, "--model", "nrnn", "--out", out, "--epochs", "1",
               "--set", "params.hidden_size=4", "--no-progress", *extra])
    assert rc == 0, rc
'''

# name -> (the item, python set-up run in the case's folder, the command's argv after `noisyrnn`)
# A command of None means the set-up itself is the case (Python API calls).
CASES: list[tuple[str, str, str, list[str] | None]] = []


def case(name, item, setup="", argv=None):
    CASES.append((name, item, textwrap.dedent(setup), argv))


TRAIN = ["train", "--data", "d.npz", "--model", "nrnn", "--out", "run", "--epochs", "1", "--no-progress"]
for v in ("abc", "8.5", "true", "-5", "0"):
    case(f"--set params.hidden_size={v}", "5", "npz('d.npz')", TRAIN + ["--set", f"params.hidden_size={v}"])
for v in ("1e9", "2.5"):
    case(f"--set train.epochs={v}", "5", "npz('d.npz')", TRAIN[:-3] + ["--no-progress", "--set", f"train.epochs={v}"])
case("--set train.lr_milestones=1", "5", "npz('d.npz')", TRAIN + ["--set", "train.lr_milestones=1"])
case("--set train.eval_batch_size=0", "5", "npz('d.npz')", TRAIN + ["--set", "train.eval_batch_size=0"])
case("TOML value of the wrong type (hidden_size = \"8\")", "5",
     "npz('d.npz'); open('c.toml','w').write('model = \"nrnn\"\\n[params]\\nhidden_size = \"8\"\\n')",
     ["train", "--data", "d.npz", "--config", "c.toml", "--out", "run", "--epochs", "1", "--no-progress"])
case("binary TOML file", "5", "npz('d.npz'); open('c.toml','wb').write(bytes(range(256)))",
     ["train", "--data", "d.npz", "--config", "c.toml", "--out", "run", "--epochs", "1", "--no-progress"])
case("value_range = \"abc\" in model.json", "5",
     "npz('d.npz'); train('r'); m = json.load(open('r/model.json')); m['data']['value_range'] = 'abc'; "
     "json.dump(m, open('r/model.json', 'w'))",
     ["evaluate", "r", "--data", "d.npz", "--out", "ev"])
case("predict --out naming an existing folder", "5", "npz('d.npz'); train('r'); os.mkdir('p')",
     ["predict", "r", "--data", "d.npz", "--out", "p"])
case("train --out naming an existing file", "5", "npz('d.npz'); open('run', 'w').write('x')", TRAIN)
case("a run path that is a file", "5", "npz('d.npz'); open('r', 'w').write('x')",
     ["predict", "r", "--data", "d.npz", "--out", "p.csv"])
case("NRNNClassifier(params={'hidden_size': -5}).fit", "5",
     "from noisyrnn import NRNNClassifier\nX = rng.normal(size=(20, 8)); y = [0, 1] * 10\n"
     "NRNNClassifier(params={'hidden_size': -5}, epochs=1).fit(X, y)")
case("NRNNClassifier(epochs=1.5).fit", "5",
     "from noisyrnn import NRNNClassifier\nX = rng.normal(size=(20, 8)); y = [0, 1] * 10\n"
     "c = NRNNClassifier(epochs=1.5, params={'hidden_size': 4}).fit(X, y); print('epochs trained:', len(c.history_))")
case("complex-valued X", "6", "npz('d.npz', complex_=True)", TRAIN)
case("--set train.lr_milestones=abc", "6", "npz('d.npz')", TRAIN + ["--set", "train.lr_milestones=abc"])
case("salt and pepper above 1 (sp_2)", "6", "npz('d.npz'); train('r')",
     ["evaluate", "r", "--data", "d.npz", "--columns", "sp_2", "--out", "ev"])
case(".ts label not declared in @classLabel", "6",
     "open('d_TRAIN.ts','w').write('@problemName d\\n@timeStamps false\\n@univariate true\\n@classLabel true a b\\n"
     "@data\\n' + ''.join(f'1,2,3,{i},5:{\"abc\"[i % 3]}\\n' for i in range(12)))",
     ["train", "--data", "d_TRAIN.ts", "--model", "nrnn", "--out", "run", "--epochs", "1", "--no-progress"])
case("sweep [overrides.NAME] for a model the sweep does not run", "6",
     "npz('d.npz'); open('s.toml','w').write('data = \"d.npz\"\\nmodels = [\"lipschitz\"]\\n[overrides.lipschtz]\\n"
     "\"train.epochs\" = 1\\n')",
     ["sweep", "s.toml", "--out", "store", "--no-progress"])
case("unknown perturbation column in a sweep", "6",
     "npz('d.npz'); open('s.toml','w').write('data = \"d.npz\"\\nmodels = [\"lipschitz\"]\\ncolumns = [\"clean\", "
     "\"whte_0.4\"]\\n[overrides.lipschitz]\\n\"train.epochs\" = 1\\n\"params.hidden_size\" = 4\\n')",
     ["sweep", "s.toml", "--out", "store", "--no-progress"])
case("model.json without 'data'", "7",
     "npz('d.npz'); train('r'); m = json.load(open('r/model.json')); del m['data']; json.dump(m, open('r/model.json', 'w'))",
     ["predict", "r", "--data", "d.npz", "--out", "p.csv"])
case("class list longer than the decoder", "7",
     "npz('d.npz'); train('r'); m = json.load(open('r/model.json')); m['data']['classes'].append('c'); "
     "json.dump(m, open('r/model.json', 'w'))",
     ["predict", "r", "--data", "d.npz", "--out", "p.csv"])
case("model.json sizes that do not match the weights", "7",
     "npz('d.npz'); train('r'); m = json.load(open('r/model.json')); m['model']['params']['hidden_size'] = 5; "
     "json.dump(m, open('r/model.json', 'w'))",
     ["predict", "r", "--data", "d.npz", "--out", "p.csv"])
case("estimator.json naming an unknown model", "7",
     "from noisyrnn import NRNNClassifier\nX = rng.normal(size=(20, 8)); y = [0, 1] * 10\n"
     "NRNNClassifier(epochs=1, params={'hidden_size': 4}).fit(X, y).save('e')\n"
     "s = json.load(open('e/estimator.json')); s['params']['model'] = 'nosuch'; json.dump(s, open('e/estimator.json', 'w'))\n"
     "print(NRNNClassifier.load('e').predict(X[:2]))")
case("estimator.json with other sizes than the weights", "7",
     "from noisyrnn import NRNNClassifier\nX = rng.normal(size=(20, 8)); y = [0, 1] * 10\n"
     "NRNNClassifier(epochs=1, params={'hidden_size': 4}).fit(X, y).save('e')\n"
     "s = json.load(open('e/estimator.json')); s['params']['params'] = {'hidden_size': 6}; s['n_channels'] = 3\n"
     "json.dump(s, open('e/estimator.json', 'w'))\nprint(NRNNClassifier.load('e').predict(X[:2]))")
case("predict compares labels by value (2.0 vs 2)", "7",
     "npz('tr.npz', labels=[1, 2] * 20); np.savez('te.npz', X=rng.normal(size=(10, 12, 1)), y=np.array([1.0, 2.0] * 5))\n"
     "train('r', data='tr.npz')\nfrom noisyrnn.cli import main\n"
     "main(['predict', 'r', '--data', 'te.npz', '--out', 'p.csv'])\n"
     "main(['evaluate', 'r', '--data', 'te.npz', '--columns', 'clean', '--out', 'ev'])")
case("hidden_size = 10**9 in a model.json", "8",
     "npz('d.npz'); train('r'); m = json.load(open('r/model.json')); m['model']['params']['hidden_size'] = 10**9; "
     "json.dump(m, open('r/model.json', 'w'))",
     ["predict", "r", "--data", "d.npz", "--out", "p.csv"])
case("--set params.hidden_size=30000", "8", "npz('d.npz')", TRAIN + ["--set", "params.hidden_size=30000"])
case("20 sequences of 200,000 steps (train)", "8", "npz('d.npz', n=20, T_long=200_000)", TRAIN)
case("20 sequences of 200,000 steps (predict)", "8",
     "npz('s.npz'); train('r', data='s.npz'); npz('d.npz', n=20, T_long=200_000)",
     ["predict", "r", "--data", "d.npz", "--out", "p.csv"])
case("train --out holding a finished run on other data", "3",
     "npz('d.npz'); train('r'); npz('other.npz', labels=['x', 'y'] * 20)",
     ["train", "--data", "other.npz", "--model", "nrnn", "--out", "r", "--epochs", "1",
      "--set", "params.hidden_size=4", "--no-progress"])


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def run_case(name, item, setup, argv, src: Path | None, memory_gb: float, timeout: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    try:
        pre = subprocess.run([sys.executable, "-c", SETUP + (setup if argv is not None else "")], cwd=work, env=env,
                             capture_output=True, text=True, timeout=4 * timeout)
    except subprocess.TimeoutExpired:
        return {"case": name, "item": item, "setup_failed": [f"set-up still running after {4 * timeout:g} s"]}
    if pre.returncode != 0:
        return {"case": name, "item": item, "setup_failed": pre.stderr.strip().splitlines()[-1:]}
    before = snapshot(work)
    cmd = ([sys.executable, "-m", "noisyrnn.cli", *argv] if argv is not None
           else [sys.executable, "-c", SETUP + setup])
    limit = int(memory_gb * 2**30)

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    t0 = time.time()
    try:
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout, preexec_fn=cap)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = "timeout", exc.stdout or "", exc.stderr or ""
        out, err = (out.decode() if isinstance(out, bytes) else out), (err.decode() if isinstance(err, bytes) else err)
    after = snapshot(work)
    written = sorted(k for k, v in after.items() if before.get(k) != v)
    err_lines = [line for line in err.splitlines() if line.strip() and not line.startswith("noisyrnn: settings:")]
    memory = "MemoryError" in err or "std::bad_alloc" in err or "DefaultCPUAllocator" in err
    return {"case": name, "item": item, "api": argv is None, "exit": rc, "seconds": round(time.time() - t0, 1),
            "traceback": "Traceback (most recent call last)" in err, "stderr_lines": len(err_lines),
            "message": err_lines[-1][:300] if err_lines else "", "stdout_tail": out.strip().splitlines()[-3:],
            "hit_memory_limit": memory, "written": written[:8]}


def outcome(r: dict) -> str:
    if "setup_failed" in r:
        return "set-up failed: " + " ".join(r["setup_failed"])
    if r["exit"] == "timeout":
        return "still running at the time limit"
    if r["hit_memory_limit"]:
        return f"ran out of memory at the {ARGS.memory_gb:g} GB limit (exit {r['exit']})"
    if r.get("api"):  # a Python call: it either raises (which exception?) or returns
        return f"raises {r['message'].split(':')[0]}" if r["exit"] != 0 else "returns (accepted)"
    if r["traceback"]:
        return f"exit {r['exit']}, traceback"
    if r["exit"] == 2 and r["stderr_lines"] == 1:
        return "exit 2, one-line error"
    return "exit 0, accepted" if r["exit"] == 0 else f"exit {r['exit']}, {r['stderr_lines']} line(s) on stderr"


def markdown(rows: list[dict]) -> str:
    lines = ["| # | item | case | outcome | message | files written |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        msg = (r.get("message") or " / ".join(r.get("stdout_tail") or [])).replace("|", "\\|")
        lines.append(f"| {i} | {r['item']} | {r['case'].replace('|', '/')} | {outcome(r)} | {msg[:200]} | "
                     f"{', '.join(r.get('written') or []) or '-'} |")
    return "\n".join(lines) + "\n"


def before_after(before: dict, after: dict) -> str:
    """One table: each case's outcome and message with the code of ``before`` and of ``after``."""
    old = {r["case"]: r for r in before["cases"]}
    lines = [f"Before: {before['code']}. After: {after['code']}. Each case in a fresh folder, "
             f"address-space limit {after['memory_gb']:g} GB.", "",
             "| # | item | case | before | after | after: message (or output) |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(after["cases"], 1):
        b = old.get(r["case"])
        before_text = outcome(b) + (f": {b.get('message', '')[:90]}" if b and b.get("message") else "") if b else "-"
        msg = (r.get("message") or " / ".join(r.get("stdout_tail") or [])).replace("|", "\\|")
        lines.append(f"| {i} | {r['item']} | {r['case'].replace('|', '/')} | {before_text.replace('|', '/')} | "
                     f"{outcome(r)} | {msg[:220]} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--src", type=Path, default=None, help="another checkout's src/ to run instead of this one")
    ap.add_argument("--memory-gb", type=float, default=6.0)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--only", default=None, help="run only cases whose name contains this")
    ap.add_argument("--combine", nargs=2, type=Path, metavar=("BEFORE_JSON", "AFTER_JSON"),
                    help="write OUT/cases.md as one before/after table of two earlier runs' cases.json")
    ARGS = ap.parse_args()
    if ARGS.combine:
        b, a = (json.loads(p.read_text()) for p in ARGS.combine)
        ARGS.memory_gb = a["memory_gb"]
        ARGS.out.mkdir(parents=True, exist_ok=True)
        (ARGS.out / "cases.md").write_text(before_after(b, a))
        sys.exit(0)
    rows = []
    for name, item, setup, argv in CASES:
        if ARGS.only and ARGS.only not in name:
            continue
        r = run_case(name, item, setup, argv, ARGS.src, ARGS.memory_gb, ARGS.timeout)
        print(f"[{r['item']}] {name}: {outcome(r)} :: {r.get('message', '')[:150]}", flush=True)
        rows.append(r)
    ARGS.out.mkdir(parents=True, exist_ok=True)
    src = ARGS.src or Path(__file__).resolve().parent.parent / "src"
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=src, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src, capture_output=True,
                           text=True).stdout.strip()
    code = f"commit {sha}" + (" with uncommitted changes" if dirty else "")
    (ARGS.out / "cases.json").write_text(json.dumps({"code": code, "memory_gb": ARGS.memory_gb, "cases": rows}, indent=2))
    (ARGS.out / "cases.md").write_text(f"Code: {code}; address-space limit {ARGS.memory_gb:g} GB per case.\n\n"
                                       + markdown(rows))
