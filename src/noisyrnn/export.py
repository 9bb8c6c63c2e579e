"""A trained classifier's inference path as a file that runs without noisyrnn: ONNX (for ONNX
Runtime and other runtimes) or TorchScript (``torch.jit.load``).

The exported graph is eq (6), the noise-free Euler recurrence, of the model's declared drift form
(the forms the C++ cell engine runs: eq (3)'s Lipschitz drift, the antisymmetric and gated
antisymmetric RNNs, expRNN's modReLU, coRNN's IMEX step), written once here in plain tensor
operations with a loop over time, so the sequence length stays dynamic (an ONNX ``Loop``).
Inputs: ``x`` (batch, time, channels) in the data's own units (the run's per-channel
normalisation is inside the graph), ``lengths`` (batch,) int64, each sequence's real steps
(the state is frozen past them, as in training), and ``state`` (batch, state_size), the state
to start from (zeros for a new sequence). Outputs: ``logits`` and ``probabilities`` (batch,
classes) and ``state``, the state after the last real step: fed back with the next chunk, it
streams a sequence one sample or chunk at a time. The file's metadata (ONNX ``metadata_props``, TorchScript extra file
``noisyrnn.json``) carries the class labels, the normalisation, the model's configuration and
the inputs' layout.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch

from .data.files import atomic_write_bytes
from .errors import ConfigError
from .models.inference import FORMS, AveragedGraph, InferenceGraph, graph_of

FORMATS = ("onnx", "torchscript")
METADATA_KEY = "noisyrnn"
MIN_OPSET = 11  # ONNX Loop with a dynamic trip count and Where
DEFAULT_OPSET = 17


def inference_graph(run):
    """The :class:`~noisyrnn.models.inference.InferenceGraph` of a
    :class:`~noisyrnn.predict.TrainedRun`, its normalisation inside (a seed ensemble's:
    :class:`~noisyrnn.models.inference.AveragedGraph` of its members')."""
    model = run.model
    if run.regression:
        raise ConfigError("export writes a classifier's inference path (logits, probabilities); this run is a "
                          "regression model: use noisyrnn predict, or noisyrnn.nn's layers in your own exported model")
    members = getattr(model, "members", None)
    if members is not None:
        return AveragedGraph([_drift_graph(m, run) for m in members])
    return _drift_graph(model, run)


def _drift_graph(model, run) -> InferenceGraph:
    if getattr(getattr(model, "drift", None), "form", None) not in FORMS:
        name = (getattr(model, "config", {}) or {}).get("name", type(model).__name__)
        raise ConfigError(f"model {name!r} has no declared drift form to export; export takes the drift models "
                          "(lipschitz, nrnn, nrnn_high, nrnn_explicit, antisymmetric, antisymmetric_gated, cornn, "
                          "exprnn), not torch's LSTM/GRU")
    return graph_of(model, run.normalization)


def metadata(run) -> dict:
    """What the exported file carries besides the graph."""
    norm = run.normalization
    return {"format_version": 1, "classes": run.classes, "model": run.model.config,
            "normalization": None if norm is None else {"mean": list(norm.mean), "std": list(norm.std)},
            "state_size": int(getattr(run.model, "state_size", run.model.hidden_size)),
            "inputs": {"x": "float32 (batch, time, channels), the data's own units",
                       "lengths": "int64 (batch,), real steps per sequence",
                       "state": "float32 (batch, state_size), zeros for a new sequence"},
            "outputs": {"logits": "(batch, classes)", "probabilities": "(batch, classes), softmax",
                        "state": "(batch, state_size), to continue the sequence"}}


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
    example = (torch.zeros(1, 2, channels), torch.full((1,), 2, dtype=torch.int64),
               torch.zeros(1, scripted.hidden))
    raw = io.BytesIO()
    torch.onnx.export(scripted, example, raw, dynamo=False, opset_version=opset,
                      input_names=["x", "lengths", "state"], output_names=["logits", "probabilities", "state_out"],
                      dynamic_axes={"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "state": {0: "batch"},
                                    "logits": {0: "batch"}, "probabilities": {0: "batch"},
                                    "state_out": {0: "batch"}})
    proto = onnx.load_from_string(raw.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, text
    proto.producer_name = "noisyrnn"
    onnx.checker.check_model(proto)
    buf.write(proto.SerializeToString())
