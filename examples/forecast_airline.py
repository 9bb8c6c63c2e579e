"""A noisy recurrent layer inside your own PyTorch model, trained by a plain PyTorch loop:
one-step-ahead forecasting of the airline passengers series that aeon ships (monthly,
1949-1960, 144 values), on every step.

The model is the user's: an NRNN layer (noisyrnn.nn, torch.nn.RNN's conventions) and a linear
head on each step's output. Hidden-state noise is injected in training only, by the forward
keyword with its own generator (noisyrnn never switches it on by ``.train()``). The last 36
months are held out; the forecast is compared with the seasonal-naive forecast (the value 12
months earlier) and with persistence (the last value).

    python examples/forecast_airline.py [--epochs 300] [--seed 0]
"""

import argparse

import numpy as np
import torch
from aeon.datasets import load_airline
from torch import nn

from noisyrnn.nn import NRNN


class Forecaster(nn.Module):
    """log-passengers (standardised) at month t -> its forecast for month t + 1, every step."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.rnn = NRNN(1, hidden, batch_first=True, add_noise=0.05, mult_noise=0.05)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, noise=False, generator=None):
        out, _ = self.rnn(x, noise=noise, generator=generator)
        return self.head(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    series = np.log(load_airline().astype(np.float64))
    train_end = len(series) - 36
    mean, std = series[:train_end].mean(), series[:train_end].std()
    z = torch.tensor((series - mean) / std, dtype=torch.float32).view(1, -1, 1)
    inputs, targets = z[:, :-1], z[:, 1:]  # month t -> month t + 1
    fit = slice(0, train_end - 1)  # targets inside the training months only

    model = Forecaster()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    noise = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        optimizer.zero_grad()
        loss = ((model(inputs, noise=True, generator=noise) - targets)[:, fit] ** 2).mean()
        loss.backward()
        optimizer.step()

    model.eval()
    with torch.no_grad():
        forecast = model(inputs)[0, :, 0].numpy() * std + mean  # noise off: the default
    truth = series[1:]
    test = slice(train_end - 1, None)

    def rmse(pred):
        return float(np.sqrt(np.mean((np.exp(pred[test]) - np.exp(truth[test])) ** 2)))

    ours = rmse(forecast)
    seasonal = rmse(np.concatenate([np.full(11, np.nan), series[:-12]]))  # month t+1 - 12
    persistence = rmse(series[:-1])
    print(f"test months: {len(truth[test])}; RMSE in passengers (thousands): NRNN layer {ours:.1f}, "
          f"seasonal naive {seasonal:.1f}, persistence {persistence:.1f}")


if __name__ == "__main__":
    main()
