"""The paper's published numbers (accuracy in %, Tables 1-3) and the one registry of each
task's result columns (perturbations: :mod:`noisyrnn.perturbations`)."""

from __future__ import annotations

ECG_COLUMNS = ["clean", "white_0.4", "white_0.8", "white_1.2", "mult_0.4", "mult_0.8", "mult_1.2"]
MNIST_COLUMNS = ["clean", "white_0.1", "white_0.2", "white_0.3", "sp_0.03", "sp_0.05", "sp_0.1",
                 "fgsm_0.01", "fgsm_0.05", "fgsm_0.1", "fgsm_0.15"]
# users' data (train --data, evaluate --data, search, the estimator's reports): z-scored, so the
# levels are in units of each channel's training standard deviation, as Table 3's
USER_COLUMNS = list(ECG_COLUMNS)

COLUMNS = {
    "ecg": ECG_COLUMNS,
    "mnist": MNIST_COLUMNS, "pmnist": MNIST_COLUMNS, "mnist_rows": MNIST_COLUMNS, "pmnist_rows": MNIST_COLUMNS,
}


def columns_for(task: str) -> list[str]:
    """The paper table's columns for a paper task, else :data:`USER_COLUMNS`."""
    return list(COLUMNS.get(task, USER_COLUMNS))


# Table 3: robustness w.r.t. white (sigma) and multiplicative (sigma_M) noise on ECG.
TABLE3_ECG = {
    "antisymmetric": [97.1, 96.6, 91.6, 77.0, 96.6, 94.6, 91.2],
    "cornn": [97.5, 96.8, 92.9, 87.2, 93.9, 85.4, 78.4],
    "exprnn": [97.4, 95.6, 86.4, 76.7, 95.7, 89.4, 81.3],
    "lipschitz": [97.7, 97.4, 95.1, 88.9, 97.6, 97.0, 95.6],
    "nrnn": [97.7, 97.5, 96.3, 92.6, 97.7, 97.3, 96.5],
}

# Tables 1 and 2: ordered pixel-by-pixel MNIST (white noise, salt and pepper, FGSM).
TABLE12_MNIST = {
    "antisymmetric": [97.5, 45.7, 22.3, 17.0, 77.1, 63.9, 42.6, 79.4, 24.7, 11.4, 10.2],
    "cornn": [99.1, 96.6, 61.9, 32.1, 95.6, 88.1, 58.9, 97.5, 85.5, 55.9, 35.1],
    "exprnn": [96.7, 86.7, 58.1, 33.3, 83.6, 70.7, 43.4, 94.5, 59.3, 19.7, 14.3],
    "lipschitz": [99.2, 98.4, 78.9, 47.1, 97.6, 93.4, 73.5, 98.1, 85.7, 58.9, 37.1],
    "nrnn": [99.1, 98.9, 88.4, 62.9, 98.3, 95.6, 78.7, 98.8, 94.3, 79.6, 58.3],
    "nrnn_high": [99.1, 98.9, 92.2, 73.5, 98.5, 97.1, 85.5, 98.8, 95.5, 86.8, 70.6],
}

PAPER = {
    "ecg": {m: dict(zip(COLUMNS["ecg"], row)) for m, row in TABLE3_ECG.items()},
    "mnist": {m: dict(zip(MNIST_COLUMNS, row)) for m, row in TABLE12_MNIST.items()},
}

DISPLAY_NAMES = {
    "antisymmetric": "Antisymmetric RNN",
    "antisymmetric_gated": "Gated antisymmetric RNN",
    "cornn": "coRNN",
    "exprnn": "Exponential RNN",
    "lipschitz": "Lipschitz RNN",
    "nrnn": "NRNN",
    "nrnn_high": "NRNN (mult./add. 0.02/0.05)",
    "nrnn_explicit": "Explicit regulariser (eq 18)",
    "lstm": "LSTM",
    "gru": "GRU",
}

# The paper's table of another task that a proxy task is shown beside (never as a gap).
REFERENCE_TASK = {"mnist_rows": "mnist", "pmnist_rows": "pmnist"}


def paper_value(task: str, model: str, column: str) -> float | None:
    return PAPER.get(task, {}).get(model, {}).get(column)
