"""A trained classifier on a live stream: one sample per line in, the running prediction out.

Each input line holds one sample, the model's channels as comma-separated numbers in the
data's own units (the run's normalisation is applied); a blank line ends the sequence and the
next sample starts a new one. Each sample advances the carried state by one step
(``model.step``, noise off), so the prediction after sample m equals the whole-sequence
prediction for the first m samples. Output: CSV with a header, one row per sample
(``sequence,step,predicted,prob_CLASS...``). A model that reads windows of k samples
(``params.patch = k``) advances once per window: a row after every k-th sample, and one for a
sequence's last, partial window when the sequence ends (a blank line or the end of input).
"""

from __future__ import annotations

import csv
import math

import torch

from .errors import DataError
from .predict import TrainedRun


def parse_sample(line: str, number: int, channels: int) -> list[float]:
    """One stdin line as ``channels`` finite numbers, or a DataError naming the line and fault."""
    fields = [f.strip() for f in line.split(",")]
    if len(fields) != channels:
        raise DataError(f"stdin line {number}: expected {channels} comma-separated value(s) (the model's channels), "
                        f"got {len(fields)}")
    values = []
    for field in fields:
        try:
            value = float(field)
        except ValueError:
            raise DataError(f"stdin line {number}: {field!r} is not a number") from None
        if not math.isfinite(value):
            raise DataError(f"stdin line {number}: {field!r} is NaN or infinite; the stream needs finite values")
        values.append(value)
    return values


@torch.no_grad()
def stream_predictions(folder, lines, out, every: int = 1) -> int:
    """Read ``lines`` (an iterable of text lines), write the running predictions to ``out``."""
    if every < 1:
        raise DataError(f"--every must be >= 1, got {every}")
    run = TrainedRun.load(folder)
    if run.regression:
        raise DataError(f"{folder} holds a regression model; stream prints a classifier's running prediction")
    model = run.model.eval()
    channels = model.input_size
    mean = torch.tensor(run.normalization.mean if run.normalization is not None else [0.0] * channels)
    std = torch.tensor(run.normalization.std if run.normalization is not None else [1.0] * channels)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["sequence", "step", "predicted"] + [f"prob_{c}" for c in run.classes])
    out.flush()
    patch = getattr(model, "patch", 1)
    sequence, step, state, pending = 0, 0, model.init_state(1), []

    def advance(force: bool = False):
        """Step the model over the pending samples (a whole window, or with ``force`` the last, partial one)."""
        nonlocal state
        chunk = torch.zeros(1, patch, channels)
        chunk[0, : len(pending)] = torch.stack(pending)
        logits, state = model.step(chunk, state, lengths=torch.tensor([len(pending)]) if force else None)
        pending.clear()
        if step % every == 0 or force:
            probs = torch.softmax(logits[0], dim=-1).tolist()
            writer.writerow([sequence, step, run.classes[int(logits[0].argmax())]] + [f"{p:.6f}" for p in probs])
            out.flush()

    for number, line in enumerate(lines, 1):
        if not line.strip():  # a new sequence
            if pending:
                advance(force=True)
            if step:
                sequence, step, state = sequence + 1, 0, model.init_state(1)
            continue
        pending.append((torch.tensor(parse_sample(line, number, channels)) - mean) / std)
        step += 1
        if len(pending) == patch:
            advance()
    if pending:
        advance(force=True)
    return 0
