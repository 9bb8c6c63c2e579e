"""The paper's published numbers (accuracy in %, Tables 1-3) and each task's result columns."""

from __future__ import annotations

COLUMNS = {
    "ecg": ["clean", "white_0.4", "white_0.8", "white_1.2", "mult_0.4", "mult_0.8", "mult_1.2"],
}

# Table 3: robustness w.r.t. white (sigma) and multiplicative (sigma_M) noise on ECG.
TABLE3_ECG = {
    "antisymmetric": [97.1, 96.6, 91.6, 77.0, 96.6, 94.6, 91.2],
    "cornn": [97.5, 96.8, 92.9, 87.2, 93.9, 85.4, 78.4],
    "exprnn": [97.4, 95.6, 86.4, 76.7, 95.7, 89.4, 81.3],
    "lipschitz": [97.7, 97.4, 95.1, 88.9, 97.6, 97.0, 95.6],
    "nrnn": [97.7, 97.5, 96.3, 92.6, 97.7, 97.3, 96.5],
}

PAPER = {"ecg": {m: dict(zip(COLUMNS["ecg"], row)) for m, row in TABLE3_ECG.items()}}

DISPLAY_NAMES = {
    "antisymmetric": "Antisymmetric RNN",
    "antisymmetric_gated": "Gated antisymmetric RNN",
    "cornn": "coRNN",
    "exprnn": "Exponential RNN",
    "lipschitz": "Lipschitz RNN",
    "nrnn": "NRNN",
    "lstm": "LSTM",
    "gru": "GRU",
}


def paper_value(task: str, model: str, column: str) -> float | None:
    return PAPER.get(task, {}).get(model, {}).get(column)
