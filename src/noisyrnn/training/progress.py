"""Training progress: one bar per run on a terminal, one plain line per epoch otherwise.

``progress=True`` picks by the output stream: a tqdm bar (epochs, loss, validation
accuracy, time left) when it is a terminal, else a line per epoch such as
``nrnn epoch 3/60 loss 0.412 train 0.861 val 0.874 12.3 s (~3 min left)`` so that logs
written to files stay readable. ``progress=False`` is silent.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class EpochProgress:
    def __init__(self, name: str, start: int, total: int, enabled: bool = True, stream=None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.name, self.start, self.total = name, start, total
        self.enabled = enabled
        self.bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            self.bar = tqdm(total=total, initial=start, desc=name, leave=False, file=self.stream, unit="epoch")

    def update(self, metrics: dict) -> None:
        if not self.enabled:
            return
        regression = "val_rmse" in metrics
        head = "val_rmse" if regression else "val_accuracy"
        val = metrics.get(head)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", val=f"{val:.3f}")
            return
        epoch = metrics["epoch"] + 1
        done = epoch - self.start
        left = metrics["seconds"] / max(epoch, 1) * (self.total - epoch) if done > 0 else 0.0
        extra = "".join(f" {k[4:]} {v:.3f}" for k, v in metrics.items() if k.startswith("val_") and k not in
                        (head, "val_loss"))
        train = metrics["train_rmse" if regression else "train_accuracy"]
        print(f"{self.name} epoch {epoch}/{self.total} loss {metrics['train_loss']:.3f} "
              f"train {train:.3f} val{' rmse' if regression else ''} {val:.3f}{extra} {metrics['seconds']:.1f} s "
              f"(~{_duration(left)} left)", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
