"""Demonstrate the sweep engine on ECG: Ray = local, SIGKILL + resume, a failing run.

Usage: python scripts/demo_sweeps.py WORKDIR
Prints a summary; every check is also a test in tests/test_sweep.py.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

CONFIG = """
model = "{model}"
[params]
hidden_size = 32
step = 0.1
[train]
epochs = {epochs}
batch_size = 64
lr = {lr}
lr_milestones = []
"""


def sweep_cmd(sweep, out, configs, *extra):
    return [sys.executable, "-m", "noisyrnn.cli", "sweep", str(sweep), "--out", str(out), "--config-dir",
            str(configs), "--no-progress", *extra]


def index(out):
    return {(r["run"], r["seed"]): (r["status"], r.get("accuracy", {}).get("clean"), r.get("error"))
            for r in map(json.loads, (Path(out) / "index.jsonl").read_text().splitlines())}


def main():
    work = Path(sys.argv[1])
    configs = work / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    for m in ("nrnn", "lipschitz"):
        (configs / f"{m}.toml").write_text(CONFIG.format(model=m, epochs=8, lr=0.003))
    sweep = work / "sweep.toml"
    sweep.write_text('task = "ecg"\nmodels = ["nrnn", "lipschitz"]\nseeds = [0, 1, 2, 3]\nbatch_seeds = false\n')

    print("1) 8 ECG runs, local executor (2 workers) vs a local Ray instance (2 workers)")
    t0 = time.time()
    subprocess.run(sweep_cmd(sweep, work / "local", configs, "--workers", "2"), check=True, capture_output=True)
    t1 = time.time()
    subprocess.run(sweep_cmd(sweep, work / "ray", configs, "--workers", "2", "--executor", "ray"), check=True,
                   capture_output=True)
    t2 = time.time()
    a, b = index(work / "local"), index(work / "ray")
    for key in sorted(a):
        print(f"   {key[0]:>10s} seed {key[1]}: local clean={a[key][1]:.4f}  ray clean={b[key][1]:.4f}")
    print(f"   identical: {a == b}   (local {t1 - t0:.0f} s, ray {t2 - t1:.0f} s)")

    print("2) SIGKILL mid-sweep, then re-run")
    killed = work / "killed"
    proc = subprocess.Popen(sweep_cmd(sweep, killed, configs), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(list(killed.glob("runs/*/seed*/result.json"))) < 3:
        time.sleep(0.05)
    time.sleep(1.0)  # let the next run write a checkpoint or two
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p: p.stat().st_mtime_ns for p in killed.glob("runs/*/seed*/result.json")}
    partial = [p.parent.name for p in killed.glob("runs/*/seed*/state.safetensors") if not (p.parent / "result.json").exists()]
    print(f"   killed with {len(done)} runs finished, part-way: {partial}")
    subprocess.run(sweep_cmd(sweep, killed, configs), check=True, capture_output=True)
    redone = [str(p) for p, t in done.items() if p.stat().st_mtime_ns != t]
    subprocess.run(sweep_cmd(sweep, work / "uninterrupted", configs), check=True, capture_output=True)
    print(f"   finished runs redone: {len(redone)};  all 8 runs done: "
          f"{all(v[0] == 'done' for v in index(killed).values())};  numbers equal an uninterrupted sweep's: "
          f"{index(killed) == index(work / 'uninterrupted')}")

    print("3) A diverging configuration inside a sweep")
    (configs / "lipschitz.toml").write_text(CONFIG.format(model="lipschitz", epochs=2, lr=0.003))
    bad = work / "bad.toml"
    bad.write_text('task = "ecg"\nmodels = ["lipschitz"]\nseeds = [0, 1]\n[grid]\n"train.lr" = [0.003, 1e9]\n')
    rc = subprocess.run(sweep_cmd(bad, work / "bad", configs), capture_output=True).returncode
    for key, (status, clean, err) in sorted(index(work / "bad").items()):
        print(f"   {key[0]:>22s} seed {key[1]}: {status:6s} " + (f"clean={clean:.4f}" if clean else err))
    report = (work / "bad" / "report.md").read_text()
    print(f"   exit status {rc}; report lists the failure: {'## Failed runs' in report}")


if __name__ == "__main__":
    main()
