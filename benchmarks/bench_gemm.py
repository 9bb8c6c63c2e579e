"""The cell engine's GEMM (noisyrnn.engine (csrc/gemm.h)) against the BLAS torch links, at the engine's shapes.

    python benchmarks/bench_gemm.py --out docs/results/bench_gemm

One thread (``torch.set_num_threads(1)``: what each worker of ``make reproduce`` runs), float32, in one run: for each shape
the engine multiplies by, the time of ``repeat`` products with one right factor (the step
loop: ``torch.mm(a, b, out=c)`` / ``torch.addmm`` against ``gemm_nn``, which packs b once), and
the weight gradient a^T b over all steps (``torch.mm(a.T, b)`` against ``gemm_tn``); median of
``--repeats`` timings, GFLOP/s and the ratio. Writes ``OUT.md`` and ``OUT.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from noisyrnn.engine.build import kernels
from noisyrnn.data.files import atomic_write_text

# (label, M, K, N, accumulate): per-step products of the Table 3 / pixel-MNIST runs, hidden 128
STEPS = [
    ("ECG train, eq (3) forward: h [alpha A, W]", 64, 128, 256, False),
    ("ECG train, eq (3) backward: g += dp [alpha A, W]^T", 64, 256, 128, True),
    ("ECG train, coRNN forward: (y, z) [W ; Wz]", 64, 256, 128, False),
    ("ECG validation, eq (3) forward (500 rows)", 500, 128, 256, False),
    ("ECG test, eq (3) forward (1000 rows)", 1000, 128, 256, False),
    ("pixel train, eq (3) forward", 128, 128, 256, False),
]
# (label, K, M, N): weight gradient sum_m h_m^T dp_m, K = T B
GRADIENTS = [("ECG weight gradient (K = 140 x 64)", 140 * 64, 128, 256),
             ("pixel weight gradient (K = 784 x 128)", 784 * 128, 128, 256)]


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor())
    except OSError:
        return platform.processor()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.md and OUT.json")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=140, help="products per timing (one sequence's steps)")
    args = ap.parse_args(argv)
    ops = kernels()
    if ops is None:
        raise SystemExit("the C++ kernels are not available here: nothing to compare")
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for label, M, K, N, acc in STEPS:
        a, b = torch.randn(M, K, generator=gen), torch.randn(K, N, generator=gen)
        c = torch.zeros(M, N)

        def blas():
            for _ in range(args.steps):
                torch.addmm(c, a, b, out=c) if acc else torch.mm(a, b, out=c)

        t_blas = median_seconds(blas, args.repeats)
        t_ours = median_seconds(lambda: ops.gemm_nn(a, b, c, acc, args.steps), args.repeats)
        rows.append({"product": label, "shape": f"{M}x{K} @ {K}x{N}", "flop": 2 * M * K * N * args.steps,
                     "blas_s": t_blas, "ours_s": t_ours})
    for label, K, M, N in GRADIENTS:
        a, b = torch.randn(K, M, generator=gen), torch.randn(K, N, generator=gen)
        out = torch.empty(M, N)
        t_blas = median_seconds(lambda: torch.mm(a.T, b, out=out), args.repeats)
        t_ours = median_seconds(lambda: ops.gemm_tn([a], [b], [out]), args.repeats)
        rows.append({"product": label, "shape": f"({K}x{M})^T @ {K}x{N}", "flop": 2 * M * K * N,
                     "blas_s": t_blas, "ours_s": t_ours})
    for r in rows:
        r["blas_gflops"], r["ours_gflops"] = r["flop"] / r["blas_s"] / 1e9, r["flop"] / r["ours_s"] / 1e9
        r["speedup"] = r["blas_s"] / r["ours_s"]
    blas = "oneMKL" if torch.backends.mkl.is_available() else "the BLAS torch links"
    result = {"torch": torch.__version__, "cpu": _cpu_name(), "kernel": ops.gemm_kernel(), "blas": blas,
              "threads": 1, "steps": args.steps, "repeats": args.repeats, "rows": rows}
    lines = [f"# The engine's GEMM against {blas}, one thread",
             "", f"`python benchmarks/bench_gemm.py --out {args.out}`; torch {torch.__version__}, CPU: {result['cpu']}, "
             f"engine kernel: {result['kernel']}; per step-loop row {args.steps} products with one right factor, "
             f"median of {args.repeats}.", "",
             f"| product | shape | {blas} GFLOP/s | noisyrnn GFLOP/s | {blas} time / noisyrnn time |", "|---|---|---|---|---|"]
    lines += [f"| {r['product']} | {r['shape']} | {r['blas_gflops']:.0f} | {r['ours_gflops']:.0f} | {r['speedup']:.2f}x |"
              for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(result, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
