"""A trained classifier's inference path as a file that runs without noisyrnn: ONNX (for ONNX
Runtime and other runtimes) or TorchScript (``torch.jit.load``).

The exported graph is eq (6), the noise-free Euler recurrence, of the model's declared drift form
(the forms the C++ cell engine runs: eq (3)'s Lipschitz drift, the antisymmetric and gated
antisymmetric RNNs, expRNN's modReLU, coRNN's IMEX step), written once here in plain tensor
operations with a loop over time, so the sequence length stays dynamic (an ONNX ``Loop``).
Inputs: ``x`` (batch, time, channels) in the data's own units (the run's per-channel
normalisation is inside the graph) and ``lengths`` (batch,) int64, each sequence's real steps
(the state is frozen past them, as in training). Outputs: ``logits`` and ``probabilities``
(batch, classes). The file's metadata (ONNX ``metadata_props``, TorchScript extra file
``noisyrnn.json``) carries the class labels, the normalisation, the model's configuration and
the inputs' layout.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from .data.files import atomic_write_bytes
from .errors import ConfigError

FORMATS = ("onnx", "torchscript")
METADATA_KEY = "noisyrnn"
MIN_OPSET = 11  # ONNX Loop with a dynamic trip count and Where
DEFAULT_OPSET = 17


class InferenceGraph(nn.Module):
    """The noise-free forward pass of a :class:`~noisyrnn.models.recurrent.RecurrentClassifier`
    (eq 6, then eq 14's decoder) in TorchScript-compilable operations. ``form`` as
    ``Drift.form``; ``weight`` (H, P), ``bias``, ``gamma``, ``eps`` as ``Drift.cell_operands()``;
    the encoder's U, b; the step sizes (1 or H of them); the decoder's V, c."""

    def __init__(self, form: str, weight, bias, gamma: float, eps: float, enc_w, enc_b, step, readout: int,
                 dec_w, dec_b, mean, std) -> None:
        super().__init__()
        self.form = form
        self.gamma, self.eps = float(gamma), float(eps)
        self.readout = int(readout)
        self.hidden = int(weight.shape[0])
        self.units = self.hidden // 2 if form == "cornn" else self.hidden
        for name, value in (("weight", weight), ("bias", bias if bias is not None else torch.zeros(0)),
                            ("enc_w", enc_w), ("enc_b", enc_b), ("step", step.reshape(1, -1)),
                            ("dec_w", dec_w), ("dec_b", dec_b), ("mean", mean), ("std", std)):
            self.register_buffer(name, value.detach().to(torch.float32).clone())

    def drift_step(self, h: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """h + c * f(h, u_m): one Euler step of the declared form (c = the step sizes)."""
        p = torch.matmul(h, self.weight)
        n = self.units
        if self.form == "lipschitz":  # eq (3): alpha A h + tanh(W h + u)
            return h + self.step * (p[:, :n] + torch.tanh(p[:, n:] + u))
        if self.form == "tanh":  # antisymmetric RNN
            return h + self.step * torch.tanh(p + u)
        if self.form == "gated":  # gated antisymmetric RNN
            return h + self.step * (torch.sigmoid(p[:, n:] + u[:, n:]) * torch.tanh(p[:, :n] + u[:, :n]))
        if self.form == "modrelu":  # expRNN: modReLU(Q h + u, b) - h
            a = p + u
            return h + self.step * (torch.sign(a) * torch.relu(torch.abs(a) + self.bias) - h)
        # coRNN's IMEX step on (y, z): z' = z + dt F, y' = y + dt z'
        y, z = h[:, :n], h[:, n:]
        force = torch.tanh(p + u) - self.gamma * y - self.eps * z
        z_next = z + self.step * force
        return torch.cat([y + self.step * z_next, z_next], dim=1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (x - self.mean) / self.std
        u = torch.matmul(x, self.enc_w.t()) + self.enc_b
        h = torch.zeros(x.size(0), self.hidden, dtype=x.dtype)
        live = lengths.unsqueeze(1)
        for m in range(x.size(1)):
            h = torch.where(live > m, self.drift_step(h, u[:, m]), h)
        logits = torch.matmul(h[:, : self.readout], self.dec_w.t()) + self.dec_b
        return logits, torch.softmax(logits, dim=1)


def inference_graph(run) -> InferenceGraph:
    """The :class:`InferenceGraph` of a :class:`~noisyrnn.predict.TrainedRun`."""
    model = run.model
    drift = getattr(model, "drift", None)
    form = getattr(drift, "form", None)
    if form not in ("lipschitz", "tanh", "gated", "modrelu", "cornn"):
        name = (getattr(model, "config", {}) or {}).get("name", type(model).__name__)
        raise ConfigError(f"model {name!r} has no declared drift form to export; export takes the drift models "
                          "(lipschitz, nrnn, nrnn_high, nrnn_explicit, antisymmetric, antisymmetric_gated, cornn, "
                          "exprnn), not torch's LSTM/GRU")
    with torch.no_grad():
        weight, bias, gamma, eps = drift.cell_operands()
        enc_w, enc_b = drift.input_projection()
        step = model.step_size
        channels = model.input_size
        norm = run.normalization
        mean = torch.tensor(norm.mean if norm is not None else [0.0] * channels)
        std = torch.tensor(norm.std if norm is not None else [1.0] * channels)
        return InferenceGraph(form, weight, bias, gamma, eps, enc_w, enc_b, step, drift.readout_size,
                              model.decoder.weight, model.decoder.bias, mean, std)


def metadata(run) -> dict:
    """What the exported file carries besides the graph."""
    norm = run.normalization
    return {"format_version": 1, "classes": run.classes, "model": run.model.config,
            "normalization": None if norm is None else {"mean": list(norm.mean), "std": list(norm.std)},
            "inputs": {"x": "float32 (batch, time, channels), the data's own units",
                       "lengths": "int64 (batch,), real steps per sequence"},
            "outputs": {"logits": "(batch, classes)", "probabilities": "(batch, classes), softmax"}}


def export_run(run, fmt: str, out: Path, opset: int = DEFAULT_OPSET) -> dict:
    """Write ``run``'s inference path to ``out`` as ``fmt`` (``onnx`` or ``torchscript``);
    returns the metadata written with it."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "onnx" and opset < MIN_OPSET:
        raise ConfigError(f"--opset {opset} is too old for this graph (an ONNX Loop over time needs opset >= "
                          f"{MIN_OPSET})")
    graph = inference_graph(run).eval()
    meta = metadata(run)
    text = json.dumps(meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript: the only path with a dynamic loop
        scripted = torch.jit.script(graph)
        buf = io.BytesIO()
        if fmt == "torchscript":
            torch.jit.save(scripted, buf, _extra_files={f"{METADATA_KEY}.json": text})
        else:
            _onnx(scripted, buf, run.model.input_size, opset, text)
    atomic_write_bytes(Path(out), buf.getvalue())
    return meta


def _onnx(scripted, buf, channels: int, opset: int, text: str) -> None:
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package: pip install noisyrnn[onnx]") from None
    example = (torch.zeros(1, 2, channels), torch.full((1,), 2, dtype=torch.int64))
    raw = io.BytesIO()
    torch.onnx.export(scripted, example, raw, dynamo=False, opset_version=opset, input_names=["x", "lengths"],
                      output_names=["logits", "probabilities"],
                      dynamic_axes={"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
                                    "logits": {0: "batch"}, "probabilities": {0: "batch"}})
    proto = onnx.load_from_string(raw.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, text
    proto.producer_name = "noisyrnn"
    onnx.checker.check_model(proto)
    buf.write(proto.SerializeToString())
