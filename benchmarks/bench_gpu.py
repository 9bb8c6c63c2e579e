"""The prepared GPU check of the speed issue: ms per training step and pixel-MNIST epoch time,
for one model (S=1) and for S seed-batched models, on one device.

    python benchmarks/bench_gpu.py                      # cuda, pixel-MNIST shapes, S = 1 and 10
    python benchmarks/bench_gpu.py --device cpu --T 50 --steps 2   # a quick smoke run anywhere

Data are synthetic tensors of pixel-MNIST shape (B=128, T=784, d=1); the epoch time is
(training sequences / B) x the median step time, for the 58,000-sequence training split of
``noisyrnn.data.mnist`` (plus nothing for evaluation). Steps are forward + backward + Adam
with noise injection on (the NRNN's research-code noise) and off. The figures of merit are
the epoch time against the issue's target (under 10 s on one H100) and S=10 vs S=1 per model.
Prints a markdown table and, with ``--json FILE``, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from noisyrnn import build_model
from noisyrnn.ensemble import LipschitzEnsemble

TRAIN_SEQUENCES = 58_000


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(device, steps, step) -> float:
    """Median wall time of ``step()`` (one training step) over ``steps`` calls after a warm-up."""
    times = []
    for i in range(steps + 1):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def time_single(device, B, T, N, noise, steps):
    model = build_model("nrnn", 1, 10, hidden_size=N, step=0.01, mult_noise=0.02, add_noise=0.02).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(B, T, 1, device=device)
    y = torch.randint(0, 10, (B,), device=device)

    def step():
        loss = nn.functional.cross_entropy(model(x, noise=noise, generator=gen), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return _median_ms(device, steps, step)


def time_batched(device, B, T, N, S, noise, steps):
    models = [build_model("nrnn", 1, 10, hidden_size=N, step=0.01, mult_noise=0.02, add_noise=0.02)
              for _ in range(S)]
    ens = LipschitzEnsemble(models).to(device)
    opt = torch.optim.Adam(ens.parameters(), lr=1e-3)
    gens = [torch.Generator(device=device).manual_seed(s) for s in range(S)]
    x = torch.rand(S, B, T, 1, device=device)
    y = torch.randint(0, 10, (S, B), device=device)

    def step():
        out = ens(x, noise=noise, generators=gens)
        loss = nn.functional.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(1).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return _median_ms(device, steps, step)


@torch.no_grad()
def ensemble_agreement(device, B, T, N, S) -> float:
    """Largest |logit difference| between the seed-batched ensemble and its S models run one
    by one (noise off): the two timed computations are the same computation."""
    models = [build_model("nrnn", 1, 10, hidden_size=N, step=0.01, mult_noise=0.02, add_noise=0.02)
              for _ in range(S)]
    ens = LipschitzEnsemble(models).to(device)
    x = torch.rand(S, B, T, 1, device=device)
    alone = torch.stack([m.to(device)(x[i], noise=False) for i, m in enumerate(models)])
    return float((ens(x, noise=False) - alone).abs().max())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--B", type=int, default=128)
    ap.add_argument("--T", type=int, default=784)
    ap.add_argument("--N", type=int, default=128)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per setting (median)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: CUDA is not available here (use --device cpu for a smoke run)")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    per_epoch = TRAIN_SEQUENCES / args.B
    rows = []
    for noise in (False, True):
        one = time_single(device, args.B, args.T, args.N, noise, args.steps)
        many = time_batched(device, args.B, args.T, args.N, args.members, noise, args.steps)
        rows.append({"noise": noise, "S1_ms": one, f"S{args.members}_ms": many,
                     f"S{args.members}_ms_per_model": many / args.members,
                     "S1_epoch_s": one * per_epoch / 1000,
                     f"S{args.members}_epoch_s_per_model": many / args.members * per_epoch / 1000})
    agreement = ensemble_agreement(device, args.B, args.T, args.N, args.members)
    print(f"{name}, torch {torch.__version__}, B={args.B} T={args.T} N={args.N}, median of {args.steps} steps; "
          f"ensemble vs models alone: max |logit difference| {agreement:.2e}")
    S = args.members
    print(f"| noise | S=1 ms/step | S=1 epoch (s) | S={S} ms/step | S={S} ms/step per model | S={S} epoch per model (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {'on' if r['noise'] else 'off'} | {r['S1_ms']:.1f} | {r['S1_epoch_s']:.1f} | {r[f'S{S}_ms']:.1f} "
              f"| {r[f'S{S}_ms_per_model']:.1f} | {r[f'S{S}_epoch_s_per_model']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "args": vars(args), "rows": rows, "ensemble_max_abs_diff": agreement}, f,
                      indent=2)
    return rows


if __name__ == "__main__":
    main()
