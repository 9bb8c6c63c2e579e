"""noisyrnn.nn's speed, as ratios measured in one run (one thread unless --threads):

1. Training step (forward + backward, noise on) with a loss on every step (the output
   sequence, a head on each state) against the same model's final-state step (eq 14's loss on
   h_M), every drift form, at the ECG (B=64, T=140) and pixel-MNIST (B=128, T=784) shapes,
   N = 128; target: output-sequence step <= 1.3x the final-state step. The same two modes for
   torch.nn.RNN (tanh), LSTM and GRU of the same hidden size, and our output-sequence step
   against theirs.
2. Streaming: per-sample latency at batch 1 (microseconds) of a trained-size classifier
   (N = 128, one channel) stepping one sample at a time: noisyrnn's ``model.step``,
   torch.nn.RNN stepping with a linear head, and ONNX Runtime running the exported graph
   (``noisyrnn export``) on one sample with its state fed back.

    python benchmarks/bench_layers.py --out docs/results/bench_layers [--shapes ecg pixel] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from bench_gemm import median_seconds  # this folder is on sys.path when run as a script
from noisyrnn import build_model
from noisyrnn.data.files import atomic_write_text
from noisyrnn.runtime import keep_freed_memory

SHAPES = {"ecg": dict(B=64, T=140), "pixel": dict(B=128, T=784)}
N, CLASSES = 128, 10
FORMS = {"lipschitz": "nrnn", "tanh": "antisymmetric", "gated": "antisymmetric_gated", "cornn": "cornn",
         "modrelu": "exprnn"}
NOISE = dict(noise="research", mult_noise=0.02, add_noise=0.02)
EXTRA = {"cornn": dict(dt=0.042), "antisymmetric": dict(step=0.01), "antisymmetric_gated": dict(step=0.01)}


def ours(name: str, x: torch.Tensor, y: torch.Tensor, repeats: int) -> dict:
    params = {} if name == "nrnn" else dict(NOISE)
    model = build_model(name, x.shape[-1], CLASSES, hidden_size=N, seed=0, **params, **EXTRA.get(name, {}))
    loss = nn.CrossEntropyLoss()

    def final():
        model.zero_grad(set_to_none=True)
        loss(model(x, noise=True, generator=torch.Generator().manual_seed(0)), y).backward()

    def sequence():
        model.zero_grad(set_to_none=True)
        out = model.decode(model.states(x, noise=True, generator=torch.Generator().manual_seed(0)))
        loss(out.reshape(-1, CLASSES), y.repeat_interleave(x.shape[1])).backward()

    g_seq, g_final = torch.randn(x.shape[0], x.shape[1], model.hidden_size), torch.randn(x.shape[0], model.hidden_size)

    def layer_final():  # the recurrence alone: an upstream gradient at h_M only
        model.zero_grad(set_to_none=True)
        model.final_state(x, noise=True, generator=torch.Generator().manual_seed(0)).backward(g_final)

    def layer_sequence():  # ... at every step
        model.zero_grad(set_to_none=True)
        model.states(x, noise=True, generator=torch.Generator().manual_seed(0)).backward(g_seq)

    return {"final": median_seconds(final, repeats), "sequence": median_seconds(sequence, repeats),
            "layer_final": median_seconds(layer_final, repeats),
            "layer_sequence": median_seconds(layer_sequence, repeats)}


def torch_rnn(kind: str, x: torch.Tensor, y: torch.Tensor, repeats: int) -> dict:
    torch.manual_seed(0)
    rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind](x.shape[-1], N, batch_first=True)
    head, loss = nn.Linear(N, CLASSES), nn.CrossEntropyLoss()

    def final():
        rnn.zero_grad(set_to_none=True)
        out, _ = rnn(x)
        loss(head(out[:, -1]), y).backward()

    def sequence():
        rnn.zero_grad(set_to_none=True)
        out, _ = rnn(x)
        loss(head(out).reshape(-1, CLASSES), y.repeat_interleave(x.shape[1])).backward()

    g_seq, g_final = torch.randn(x.shape[0], x.shape[1], N), torch.randn(x.shape[0], N)

    def layer_final():
        rnn.zero_grad(set_to_none=True)
        rnn(x)[0][:, -1].backward(g_final)

    def layer_sequence():
        rnn.zero_grad(set_to_none=True)
        rnn(x)[0].backward(g_seq)

    return {"final": median_seconds(final, repeats), "sequence": median_seconds(sequence, repeats),
            "layer_final": median_seconds(layer_final, repeats),
            "layer_sequence": median_seconds(layer_sequence, repeats)}


def head_cost(x: torch.Tensor, y: torch.Tensor, repeats: int) -> dict:
    """The per-step head alone (nn.Linear(N, classes) + cross-entropy on every step, forward and
    backward) on a (B, T, N) leaf, and on the final state (B, N): what every model's step adds."""
    torch.manual_seed(0)
    head, loss = nn.Linear(N, CLASSES), nn.CrossEntropyLoss()
    states = torch.randn(x.shape[0], x.shape[1], N, requires_grad=True)
    last = torch.randn(x.shape[0], N, requires_grad=True)
    labels = y.repeat_interleave(x.shape[1])

    def sequence():
        states.grad = None
        loss(head(states).reshape(-1, CLASSES), labels).backward()

    def final():
        last.grad = None
        loss(head(last), y).backward()

    return {"final": median_seconds(final, repeats), "sequence": median_seconds(sequence, repeats)}


def streaming(samples: int) -> dict:
    """Microseconds per sample at batch 1 (median over ``samples`` steps after a warm-up)."""
    from noisyrnn.cli import main as cli
    from noisyrnn.training.checkpoint import save_model

    model = build_model("nrnn", 1, 5, hidden_size=N, seed=0).eval()
    xs = torch.randn(samples + 50, 1, 1)  # 50 warm-up samples, then the timed ones
    out = {}

    def per_sample(step) -> float:
        for i in range(50):
            step(xs[i])
        times = []
        for i in range(50, 50 + samples):
            t0 = time.perf_counter()
            step(xs[i])
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e6

    with torch.no_grad():
        state = [model.init_state(1)]

        def ours_step(x):
            _, state[0] = model.step(x, state[0])

        out["noisyrnn model.step"] = per_sample(ours_step)
        rnn, head = nn.RNN(1, N, batch_first=True), nn.Linear(N, 5)
        h = [torch.zeros(1, 1, N)]

        def torch_step(x):
            o, h[0] = rnn(x.view(1, 1, 1), h[0])
            head(o[:, -1])

        out["torch.nn.RNN stepping"] = per_sample(torch_step)
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        save_model(Path(tmp) / "run", model, extra={"data": {"classes": list(range(5)), "input_size": 1}})
        cli(["export", str(Path(tmp) / "run"), "--format", "onnx", "--out", str(Path(tmp) / "m.onnx")])
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(Path(tmp) / "m.onnx"), options)
        feed = {"lengths": np.ones(1, dtype=np.int64), "state": np.zeros((1, N), dtype=np.float32)}

        def ort_step(x):
            feed["x"] = x.numpy().reshape(1, 1, 1)
            feed["state"] = session.run(None, feed)[2]

        out["ONNX Runtime (exported graph)"] = per_sample(ort_step)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=2000, help="streaming samples timed")
    ap.add_argument("--default-malloc", action="store_true",
                    help="leave glibc's allocator as it is (default: keep_freed_memory, as the CLI's long runs)")
    args = ap.parse_args()
    if not args.default_malloc:
        keep_freed_memory()
    torch.set_num_threads(args.threads)
    results = {"threads": args.threads, "repeats": args.repeats, "N": N, "shapes": {}}
    lines = ["# noisyrnn.nn: output-sequence training step, streaming latency", "",
             f"`python benchmarks/bench_layers.py --out {args.out} --shapes {' '.join(args.shapes)} --repeats "
             f"{args.repeats}` ({args.threads} thread(s); median of {args.repeats} steps after a warm-up; "
             "noise on; glibc's allocator keeping freed memory unless --default-malloc; the ratios are of "
             "times measured in this one run).", ""]
    for shape in args.shapes:
        B, T = SHAPES[shape]["B"], SHAPES[shape]["T"]
        torch.manual_seed(0)
        x, y = torch.randn(B, T, 1), torch.randint(0, CLASSES, (B,))
        rows = {}
        for form, name in FORMS.items():
            rows[name] = ours(name, x, y, args.repeats)
            print(shape, name, rows[name], flush=True)
        for kind in ("rnn", "lstm", "gru"):
            rows[f"torch.nn.{kind.upper()}"] = torch_rnn(kind, x, y, args.repeats)
            print(shape, kind, rows[f"torch.nn.{kind.upper()}"], flush=True)
        head = head_cost(x, y, args.repeats)
        print(shape, "head", head, flush=True)
        results["shapes"][shape] = {"models": rows, "head": head}
        lines += [f"## {shape} (B = {B}, T = {T}, N = {N})", "",
                  "Training step: the model, a linear head and cross-entropy on the final state or on every step. "
                  "Layer alone: the recurrence's forward and backward with an upstream gradient at h_M only or at "
                  "every step (`output.backward(g)`), no head.", "",
                  "| model | final-state step (ms) | output-sequence step (ms) | step: sequence / final (target <= 1.3) |"
                  " head's floor: 1 + head / final step | layer alone: sequence / final |"
                  " sequence step / torch LSTM's |", "|---|---|---|---|---|---|---|"]
        lstm = rows["torch.nn.LSTM"]["sequence"]
        extra = head["sequence"] - head["final"]
        for name, r in rows.items():
            lines.append(f"| {name} | {r['final'] * 1e3:.1f} | {r['sequence'] * 1e3:.1f} | "
                         f"{r['sequence'] / r['final']:.2f} | {1 + extra / r['final']:.2f} | "
                         f"{r['layer_sequence'] / r['layer_final']:.2f} | {r['sequence'] / lstm:.2f} |")
        lines += ["", f"The head alone (nn.Linear({N}, {CLASSES}) + cross-entropy, forward and backward, torch's own "
                  f"kernels) costs {head['sequence'] * 1e3:.1f} ms on every step and {head['final'] * 1e3:.2f} ms on "
                  "the final state, the same for every model: with a recurrence that cost nothing extra, the step "
                  "ratio would still be the head's floor, 1 + (head on every step - head on the final state) / "
                  "final-state step.", ""]
    stream = streaming(args.samples)
    results["streaming_us"] = stream
    lines += ["## Streaming: per-sample latency at batch 1", "",
              f"NRNN classifier (N = {N}, one channel, 5 classes), one sample per call, median of {args.samples}.", "",
              "| path | µs per sample |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in stream.items()]
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(results, indent=2) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
