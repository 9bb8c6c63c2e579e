"""ms per training step (forward + backward + Adam) of the NRNN recurrence, as ratios.

(a) `eager`: a plain loop written the way the authors' research code does it: encoder
    inside the loop, separate h@A and h@W products, noise drawn per step.
(b) `ours`: noisyrnn's model (fused autograd Function, noise pre-drawn from Philox streams),
    noise off / on, with the C++ loops of noisyrnn.engine.build where they compile; (b-py)
    the same with the Python loop of ATen calls (noise still from the C++ Philox fill).
(c) `S batched`: S models trained at once as one seed-batched ensemble, time per model
    (on the CPU the members' C++ loops run in parallel, one thread each).
(n) `noise draw`: drawing one step's research-code noise, a uniform and a normal (T, B, N)
    tensor, with torch's CPU generator (``torch.rand`` + ``torch.randn``) and with
    noisyrnn.philox (what (b) uses).
(d) `gemm floor`: the same GEMMs a forward + backward needs (per step h@[A|W] and
    dp@[A|W]^T, and one weight-gradient GEMM over all steps), timed alone, with torch's BLAS
    (what the eager loop and (b-py) use) and with the engine's own kernel (what (b) uses).

Usage: python benchmarks/bench_recurrence.py [--shapes mnist ecg] [--repeats 5] [--threads N]
Prints one table; the figures of merit are the ratios, measured in this one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from noisyrnn import build_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
from research_style import ResearchStyleNRNN  # noqa: E402
from noisyrnn.runtime import keep_freed_memory  # noqa: E402

SHAPES = {"mnist": dict(B=128, T=784, N=128, dx=1, classes=10), "ecg": dict(B=128, T=140, N=128, dx=1, classes=2)}


def time_step(model, x, y, noise, repeats):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        if isinstance(model, ResearchStyleNRNN):
            out = model(x, noise)
        else:
            out = model(x, noise=noise, generator=gen)
        loss = nn.functional.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step warms caches and the allocator
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def time_ensemble_step(models, x, y, repeats):
    """ms per training step of S models batched as one LipschitzEnsemble, divided by S."""
    from noisyrnn.ensemble import LipschitzEnsemble

    ens = LipschitzEnsemble(models)
    S = ens.members
    opt = torch.optim.Adam(ens.parameters(), lr=1e-3)
    gens = [torch.Generator().manual_seed(s) for s in range(S)]
    xs, ys = x.expand(S, *x.shape), y.expand(S, *y.shape)
    times = []
    for i in range(repeats + 2):  # two warm-up steps: the first ones page-fault S times larger buffers
        t0 = time.perf_counter()
        out = ens(xs, noise=True, generators=gens)
        loss = nn.functional.cross_entropy(out.transpose(1, 2), ys, reduction="none").mean(1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i > 1:
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times) / S


def noise_draw(B, T, N, repeats):
    """ms to draw a uniform and a normal (T, B, N) tensor: torch's generator, then Philox."""
    from noisyrnn.engine import philox

    gen, shape = torch.Generator().manual_seed(0), (T, B, N)
    draws = [lambda: (torch.rand(shape, generator=gen), torch.randn(shape, generator=gen)),
             lambda: (philox.rand(shape, gen), philox.randn(shape, gen))]
    result = []
    for draw in draws:
        times = []
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            draw()
            if i:
                times.append(time.perf_counter() - t0)
        result.append(1000 * statistics.median(times))
    return result


def gemm_floor(B, T, N, repeats, kernel="blas"):
    """ms (and GFLOP/s) of one eq (3) training step's GEMMs alone: T products h @ [A | W]^T, T
    products dp @ [A | W] and the weight gradient over all steps; ``kernel`` "blas": torch.mm
    (the BLAS torch links), "engine": the cell engine's own (noisyrnn.engine (csrc/gemm.h), b packed once)."""
    h, w, dp = torch.randn(B, N), torch.randn(N, 2 * N), torch.randn(B, 2 * N)
    states, DP = torch.randn(T * B, N), torch.randn(T * B, 2 * N)
    p, g, dw = torch.empty(B, 2 * N), torch.zeros(B, N), torch.empty(N, 2 * N)
    wt = w.T.contiguous()
    if kernel == "engine":
        from noisyrnn.engine.build import kernels

        ops = kernels()

        def run():
            ops.gemm_nn(h, w, p, False, T)
            ops.gemm_nn(dp, wt, g, True, T)
            ops.gemm_tn([states], [DP], [dw])
    else:
        def run():
            for _ in range(T):
                torch.mm(h, w, out=p)
            for _ in range(T):
                torch.addmm(g, dp, wt, out=g)
            torch.mm(states.T, DP, out=dw)
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        run()
        if i:
            times.append(time.perf_counter() - t0)
    ms = 1000 * statistics.median(times)
    flops = 3 * 2 * B * N * 2 * N * T
    return ms, flops / (ms / 1000) / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["ecg", "mnist"], choices=list(SHAPES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--members", type=int, default=10, help="S for the seed-batched column")
    ap.add_argument("--default-malloc", action="store_true", help="skip noisyrnn.runtime.keep_freed_memory()")
    args = ap.parse_args()
    if not args.default_malloc:
        keep_freed_memory()  # applies to (a), (b) and the floor alike
    if args.threads:
        torch.set_num_threads(args.threads)
    from noisyrnn.engine import use_backend
    from noisyrnn.engine.build import kernels

    cpp = kernels() is not None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats} steps, "
          f"C++ kernels: {'on' if cpp else 'unavailable'}")
    print("| shape | (a) eager, no noise | (a) eager, noise | (b) ours, no noise | (b) ours, noise "
          "| (b-py) no noise | (b-py) noise | (d) GEMM floor, BLAS | (d) GEMM floor, engine kernel "
          "| (a)/(b) noise | (a)/(b) no noise | (b) no noise / engine floor | (b) noise / engine floor "
          "| (b-py) no noise / BLAS floor "
          f"| (c) noise, S={args.members} batched, per model | (a)/(c) noise "
          "| (n) noise draw: torch generator | (n) noise draw: Philox |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.shapes:
        s = SHAPES[name]
        torch.manual_seed(0)
        x = torch.rand(s["B"], s["T"], s["dx"])
        y = torch.randint(0, s["classes"], (s["B"],))
        eager = ResearchStyleNRNN(s["dx"], s["N"], s["classes"])
        ours = build_model("nrnn", s["dx"], s["classes"], hidden_size=s["N"], step=0.01,
                           mult_noise=0.02, add_noise=0.02)
        ea = time_step(eager, x, y, False, args.repeats)
        ean = time_step(eager, x, y, True, args.repeats)
        ob = time_step(ours, x, y, False, args.repeats)
        obn = time_step(ours, x, y, True, args.repeats)
        with use_backend("aten"):  # (b-py): the ATen path instead of the C++ engine
            pb = time_step(ours, x, y, False, args.repeats)
            pbn = time_step(ours, x, y, True, args.repeats)
        floor, gflops = gemm_floor(s["B"], s["T"], s["N"], args.repeats)
        efloor, egflops = gemm_floor(s["B"], s["T"], s["N"], args.repeats, "engine") if cpp else (float("nan"),) * 2
        members = [build_model("nrnn", s["dx"], s["classes"], hidden_size=s["N"], step=0.01, mult_noise=0.02,
                               add_noise=0.02) for _ in range(args.members)]
        ens = time_ensemble_step(members, x, y, max(3, args.repeats // 2))
        draw_torch, draw_philox = noise_draw(s["B"], s["T"], s["N"], args.repeats)
        print(f"| {name} B={s['B']} T={s['T']} N={s['N']} | {ea:.0f} ms | {ean:.0f} ms | {ob:.0f} ms | {obn:.0f} ms "
              f"| {pb:.0f} ms | {pbn:.0f} ms "
              f"| {floor:.0f} ms ({gflops:.0f} GFLOP/s) | {efloor:.0f} ms ({egflops:.0f} GFLOP/s) "
              f"| {ean / obn:.2f}x | {ea / ob:.2f}x | {ob / efloor:.2f}x "
              f"| {obn / efloor:.2f}x | {pb / floor:.2f}x | {ens:.0f} ms | {ean / ens:.2f}x "
              f"| {draw_torch:.0f} ms | {draw_philox:.0f} ms |")


if __name__ == "__main__":
    main()
