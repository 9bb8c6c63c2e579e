"""The engine's speed targets, as ratios measured in one run.

    python benchmarks/bench_engine.py --out docs/results/bench_engine

ms per training step (forward + backward + Adam, median of ``--repeats``) at the ECG5000
training shape (B=64, T=140) and the pixel-MNIST shape (B=128, T=784), hidden size 128:

1. noisy step, noisyrnn's NRNN (the cell engine, noise drawn in the C++ loop) against the
   research-style eager loop (``reference/research_style.py``), target >= 3x; with the GEMM floors
   (the step's GEMMs alone: per step h @ [alpha A^T | W^T] and its transpose product, plus
   the weight gradient), with torch's BLAS (what the eager loop uses) and with the engine's
   own kernel (:mod:`noisyrnn.engine (csrc/gemm.h)`, what the engine uses);
2. every drift model's noisy training step (research scheme mult = add = 0.02) against the
   Lipschitz drift's at the same shape, target <= 1.3x, with the generic loop's time
   (``model.fused = False``: autograd through the reference loop) beside it.

Writes ``OUT.md`` and ``OUT.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
from bench_recurrence import gemm_floor, time_step  # noqa: E402

from noisyrnn import build_model  # noqa: E402
from noisyrnn.data.files import atomic_write_text  # noqa: E402
from research_style import ResearchStyleNRNN  # noqa: E402

SHAPES = {"ecg": dict(B=64, T=140, N=128, dx=1, classes=5), "pixel": dict(B=128, T=784, N=128, dx=1, classes=10)}
NOISE = dict(noise="research", mult_noise=0.02, add_noise=0.02)
CELLS = {"lipschitz": dict(step=0.01, **NOISE), "antisymmetric": dict(step=0.01, **NOISE),
         "cornn": dict(dt=0.042, **NOISE), "exprnn": dict(**NOISE), "antisymmetric_gated": dict(step=0.01, **NOISE)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.md and OUT.json")
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--default-malloc", action="store_true", help="skip noisyrnn.runtime.keep_freed_memory()")
    args = ap.parse_args(argv)
    if not args.default_malloc:  # asked for here, for both sides alike (as bench_recurrence.py)
        from noisyrnn.runtime import keep_freed_memory

        keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    from noisyrnn.engine.build import kernels

    cpp = kernels() is not None
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": args.repeats,
              "cpp": cpp, "keep_freed_memory": not args.default_malloc, "shapes": {}}
    for name in args.shapes:
        s = SHAPES[name]
        torch.manual_seed(0)
        x = torch.rand(s["B"], s["T"], s["dx"])
        y = torch.randint(0, s["classes"], (s["B"],))
        row = {"shape": s}
        eager = ResearchStyleNRNN(s["dx"], s["N"], s["classes"])
        row["eager_noise_ms"] = time_step(eager, x, y, True, args.repeats)
        row["floor_ms"], row["floor_gflops"] = gemm_floor(s["B"], s["T"], s["N"], args.repeats)
        row["engine_floor_ms"], row["engine_floor_gflops"] = (
            gemm_floor(s["B"], s["T"], s["N"], args.repeats, "engine") if cpp else (float("nan"),) * 2)
        row["cells"] = {}
        for cell, params in CELLS.items():
            model = build_model(cell, s["dx"], s["classes"], hidden_size=s["N"], **params)
            fused_ms = time_step(model, x, y, True, args.repeats)
            model.fused = False
            loop_ms = time_step(model, x, y, True, max(2, args.repeats // 2))
            row["cells"][cell] = {"fused_ms": fused_ms, "loop_ms": loop_ms}
            print(f"{name} {cell}: {fused_ms:.1f} ms (loop {loop_ms:.1f} ms)", file=sys.stderr, flush=True)
        result["shapes"][name] = row
    lines = ["# Engine speed: the targets, as ratios measured in one run", "",
             f"`python benchmarks/bench_engine.py --out {args.out}`: torch {result['torch']}, "
             f"{result['threads']} threads, C++ kernels {'on' if cpp else 'unavailable'}, glibc allocator "
             f"{'tuned (keep_freed_memory, for every column)' if result['keep_freed_memory'] else 'default'}, ms per training step "
             f"(forward + backward + Adam), median of {args.repeats}; hidden size 128; ratios from this one run.", "",
             "## Noisy training step: NRNN against the research-style eager loop (target >= 3x)", "",
             "| shape | eager loop, noise | noisyrnn NRNN, noise | eager / ours | GEMM floor, BLAS "
             "| eager / BLAS floor | GEMM floor, engine kernel | ours / engine floor |", "|---|---|---|---|---|---|---|---|"]
    for name, row in result["shapes"].items():
        s, ours = row["shape"], row["cells"]["lipschitz"]["fused_ms"]
        lines.append(f"| {name} B={s['B']} T={s['T']} | {row['eager_noise_ms']:.1f} ms | {ours:.1f} ms "
                     f"| {row['eager_noise_ms'] / ours:.2f}x | {row['floor_ms']:.1f} ms ({row['floor_gflops']:.0f} GFLOP/s) "
                     f"| {row['eager_noise_ms'] / row['floor_ms']:.2f}x "
                     f"| {row['engine_floor_ms']:.1f} ms ({row['engine_floor_gflops']:.0f} GFLOP/s) "
                     f"| {ours / row['engine_floor_ms']:.2f}x |")
    lines += ["", "## Every drift's noisy training step against the Lipschitz drift's (target <= 1.3x)", "",
              "| shape | cell | engine | ms | / Lipschitz | generic loop (reference) | loop / engine |",
              "|---|---|---|---|---|---|---|"]
    for name, row in result["shapes"].items():
        lip = row["cells"]["lipschitz"]["fused_ms"]
        for cell, rec in row["cells"].items():
            engine = "cell engine (C++)"
            lines.append(f"| {name} | {cell} | {engine} | {rec['fused_ms']:.1f} | {rec['fused_ms'] / lip:.2f}x "
                         f"| {rec['loop_ms']:.1f} ms | {rec['loop_ms'] / rec['fused_ms']:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(result, indent=2))
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
