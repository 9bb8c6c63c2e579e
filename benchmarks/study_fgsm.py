"""Why is FGSM at r >= 0.1 more damaging for our models than in the paper's Table 2?

    python benchmarks/study_fgsm.py --store results/mnist_pixel --data-dir ../shared/data \
        --out docs/results/mnist_pixel/fgsm_study [--n 1000] [--runs lipschitz nrnn_high ...]

On the trained checkpoints of a results store (the pixel-MNIST CPU protocol), on the first
``--n`` test images, accuracy under:

* ``ours`` - our FGSM (noisyrnn.attacks.fgsm: noise injection off, clamped to [0, 1]);
* ``torchattacks`` - torchattacks' FGSM on the same checkpoint (an independent implementation),
  and the largest |difference| between the two adversarial images;
* gradient masking checks - ``pgd`` (10 steps, random start; ours and torchattacks'), which must
  be at least as strong as FGSM if the gradient is informative; ``random_sign`` (a random vertex
  of the same L-infinity ball), which must be much weaker than FGSM; success vs r up to 0.3;
* hypotheses for the paper's numbers - ``noise_on_grad`` (the gradient taken with the model's
  training noise injected, evaluation noise-free), ``noise_on_both`` (noise on for the attack and
  for the evaluation), ``no_clamp`` (the step not clamped to [0, 1]), ``normalized_scale`` (r in
  units of standardised pixels, (x - 0.1307) / 0.3081, i.e. 0.3081 r in [0, 1] units), and
  ``scale_255`` (r in units of raw pixel values 0..255, r / 255 in [0, 1] units).

Writes ``report.md`` and ``results.json`` (with the code version) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from noisyrnn.attacks import fgsm, pgd
from noisyrnn.data import load_task
from noisyrnn.data.files import atomic_write_text
from noisyrnn.experiments.paper import DISPLAY_NAMES, paper_value
from noisyrnn.provenance import code_version, describe
from noisyrnn.training.checkpoint import load_model

RADII = (0.01, 0.05, 0.1, 0.15)
EXTRA_RADII = (0.2, 0.3)
MNIST_STD = 0.3081


class WithNoise(torch.nn.Module):
    """The model with its training noise injected in every forward pass (for the hypotheses)."""

    def __init__(self, model, seed: int = 0):
        super().__init__()
        self.model = model
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x, noise=True, generator=None, lengths=None):
        return self.model(x, noise=True, generator=self.generator, lengths=lengths)


def accuracy(model, x, y, attack=None, batch=250, noise_eval=False, seed=0) -> float:
    """Accuracy on x (attacked batch by batch by ``attack(x, y)``); noise off unless ``noise_eval``."""
    gen = torch.Generator().manual_seed(seed)
    correct = 0
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        if attack is not None:
            xb = attack(xb, yb)
        with torch.no_grad():
            logits = model(xb, noise=noise_eval, generator=gen if noise_eval else None)
        correct += int((logits.argmax(-1) == yb).sum())
    return correct / len(x)


def study(model, x, y, seed: int = 0) -> dict:
    import torchattacks

    model.eval()
    noisy = WithNoise(model, seed)
    rng = torch.Generator().manual_seed(seed)
    out = {"clean": accuracy(model, x, y)}
    xg = x[:250].clone().requires_grad_(True)
    F.cross_entropy(model(xg, noise=False), y[:250]).backward()
    grad = xg.grad.abs().sum(-1)  # (n, T): |grad| per step (summed over a row's pixels)
    tail = max(1, grad.shape[1] // 8)  # the last eighth of the sequence (98 of 784 pixels, 3 of 28 rows)
    out["input_gradient"] = {"zero_fraction": float((grad == 0).float().mean()),
                             "median_abs": float(grad.median()),
                             "last_eighth_steps": tail,
                             "last_eighth_share": float(grad[..., -tail:].sum() / grad.sum())}
    if getattr(model, "injects_noise", False):
        out["clean_noise_on"] = accuracy(model, x, y, noise_eval=True, seed=seed)
    for r in RADII + EXTRA_RADII:
        row = {"ours": accuracy(model, x, y, lambda a, b: fgsm(model, a, b, r, (0.0, 1.0)))}
        if r in RADII:
            ta = torchattacks.FGSM(model, eps=r)
            row["torchattacks"] = accuracy(model, x, y, lambda a, b: ta(a, b))
            xb, yb = x[:250], y[:250]
            row["max_abs_diff_vs_torchattacks"] = float((fgsm(model, xb, yb, r, (0.0, 1.0)) - ta(xb, yb)).abs().max())
            row["pgd"] = accuracy(model, x, y, lambda a, b: pgd(model, a, b, r, steps=10, value_range=(0.0, 1.0),
                                                                  generator=rng))
            tp = torchattacks.PGD(model, eps=r, alpha=2.5 * r / 10, steps=10, random_start=True)
            row["pgd_torchattacks"] = accuracy(model, x, y, lambda a, b: tp(a, b))
            row["random_sign"] = accuracy(model, x, y, lambda a, b: (
                a + r * torch.sign(torch.rand(a.shape, generator=rng) - 0.5)).clamp(0, 1))
            row["no_clamp"] = accuracy(model, x, y, lambda a, b: fgsm(model, a, b, r, None))
            row["normalized_scale"] = accuracy(model, x, y, lambda a, b: fgsm(model, a, b, r * MNIST_STD, (0.0, 1.0)))
            row["scale_255"] = accuracy(model, x, y, lambda a, b: fgsm(model, a, b, r / 255, (0.0, 1.0)))
            if getattr(model, "injects_noise", False):
                row["noise_on_grad"] = accuracy(model, x, y, lambda a, b: fgsm(noisy, a, b, r, (0.0, 1.0)))
                row["noise_on_both"] = accuracy(model, x, y, lambda a, b: fgsm(noisy, a, b, r, (0.0, 1.0)),
                                                noise_eval=True, seed=seed)
        out[f"r={r:g}"] = row
    return out


def x_steps(rec: dict) -> int:
    return 28 if rec["task"].endswith("_rows") else 784


def code_versions(results: dict) -> str:
    """Which code studied which runs: each run records its invocation's version (a resumed study
    spans invocations); runs from before that was recorded are said to be so."""
    by_code: dict[str, list[str]] = {}
    for run, rec in results["runs"].items():
        by_code.setdefault(describe(rec["code"]) if "code" in rec else "code not recorded per run", []).append(run)
    return "; ".join(f"{code}: {', '.join(runs)}" for code, runs in by_code.items()) or describe(results["code"])


def markdown(results: dict) -> str:
    variants = ["ours", "torchattacks", "pgd", "pgd_torchattacks", "random_sign", "no_clamp", "noise_on_grad",
                "noise_on_both", "normalized_scale", "scale_255"]
    lines = []
    for run, rec in results["runs"].items():
        name = DISPLAY_NAMES.get(rec["model"], rec["model"])
        lines += [f"### {name} (`{run}`), clean {100 * rec['study']['clean']:.1f}%"
                  + (f", clean with noise on {100 * rec['study']['clean_noise_on']:.1f}%"
                     if "clean_noise_on" in rec["study"] else ""), "",
                  "| r | paper | " + " | ".join(variants) + " | max |ours - torchattacks| |",
                  "|---|---|" + "---|" * (len(variants) + 1)]
        for r in RADII:
            row = rec["study"][f"r={r:g}"]
            p = paper_value("mnist", rec["model"], f"fgsm_{r:g}")
            cells = [f"{100 * row[v]:.1f}" if v in row else "—" for v in variants]
            lines.append(f"| {r:g} | {'—' if p is None else f'{p:.1f}'} | " + " | ".join(cells)
                         + f" | {row['max_abs_diff_vs_torchattacks']:.1e} |")
        g = rec["study"]["input_gradient"]
        tail, share = ((g["last_eighth_steps"], g["last_eighth_share"]) if "last_eighth_share" in g
                       else (100, g["last_100_steps_share"]))  # records written before the eighth was used
        lines += ["", f"Input gradient on 250 images: {100 * g['zero_fraction']:.1f}% of entries exactly 0 "
                  f"(FGSM leaves those pixels unmoved), median |grad| {g['median_abs']:.1e}; the last {tail} of "
                  f"{x_steps(rec)} steps hold {100 * share:.1f}% of the total |grad| "
                  f"({100 * tail / x_steps(rec):.1f}% if spread evenly)."]
        extra = ", ".join(f"r = {r:g}: {100 * rec['study'][f'r={r:g}']['ours']:.1f}%" for r in EXTRA_RADII)
        lines += ["", f"Our FGSM at larger radii: {extra}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True, help="results store with runs/RUN/seedK checkpoints")
    ap.add_argument("--runs", nargs="+", default=None, help="run names (default: every run in the store)")
    ap.add_argument("--seed", type=int, default=0, help="which seed's checkpoint of each run")
    ap.add_argument("--n", type=int, default=1000, help="test images (the first n of the test split)")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = args.runs or sorted(p.name for p in (args.store / "runs").iterdir() if p.is_dir())
    task_cache, results = {}, {"n": args.n, "seed": args.seed, "store": str(args.store), "runs": {},
                                "code": code_version(), "seconds": 0.0}
    previous = args.out / "results.json"
    if previous.is_file():  # resume: keep the runs studied before with the same settings
        old = json.loads(previous.read_text())
        if (old.get("n"), old.get("seed"), old.get("store")) == (args.n, args.seed, str(args.store)):
            results["runs"], results["seconds"] = old["runs"], old.get("seconds", 0.0)
    t0 = time.perf_counter()
    for run in runs:
        if run in results["runs"]:
            continue
        folder = args.store / "runs" / run / f"seed{args.seed}"
        if not (folder / "model.safetensors").is_file():
            print(f"study_fgsm: no checkpoint in {folder}, skipped", file=sys.stderr)
            continue
        model, meta = load_model(folder)
        task_name = meta.get("task", "mnist")
        if task_name not in task_cache:
            task_cache[task_name] = load_task(task_name, data_dir=args.data_dir)
        test = task_cache[task_name].test
        x, y = test.x[:args.n], test.y[:args.n]
        t1 = time.perf_counter()
        results["runs"][run] = {"model": meta.get("model", {}).get("name", run.split("__")[0]),
                                "task": task_name, "study": study(model, x, y, args.seed),
                                "seconds": time.perf_counter() - t1, "code": results["code"]}
        print(f"{run}: {time.perf_counter() - t1:.0f} s", flush=True)
    results["seconds"] += time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "results.json", json.dumps(results, indent=2))
    text = ["# FGSM study on the pixel-MNIST checkpoints", "",
            f"Test accuracy in % on the first {args.n} test images, seed-{args.seed} checkpoint of each run "
            f"(`{args.store}`); produced by `python benchmarks/study_fgsm.py` ({code_versions(results)}), "
            f"{results['seconds']:.0f} s. Columns: see the docstring of `benchmarks/study_fgsm.py`. 'paper' is "
            "Table 2 (full protocol, 10 seeds).", "", markdown(results)]
    atomic_write_text(args.out / "report.md", "\n".join(text) + "\n")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
