"""Training progress: a bar on a terminal, one readable line per epoch otherwise."""

import io

from noisyrnn.training.progress import EpochProgress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def metrics(epoch):
    return {"epoch": epoch, "train_loss": 0.5 / (epoch + 1), "train_accuracy": 0.8, "val_accuracy": 0.75,
            "val_loss": 0.6, "val_under": 0.7, "seconds": 2.0 * (epoch + 1)}


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    p = EpochProgress("nrnn", 0, 4, stream=out)
    for e in range(2):
        p.update(metrics(e))
    p.close()
    lines = out.getvalue().splitlines()
    assert lines == ["nrnn epoch 1/4 loss 0.500 train 0.800 val 0.750 under 0.700 2.0 s (~6 s left)",
                     "nrnn epoch 2/4 loss 0.250 train 0.800 val 0.750 under 0.700 4.0 s (~4 s left)"]


def test_one_bar_on_a_terminal_and_silence_when_disabled():
    term = FakeTerminal()
    p = EpochProgress("lstm", 0, 3, stream=term)
    assert p.bar is not None
    p.update(metrics(0))
    p.close()
    assert "lstm" in term.getvalue() and "1/3" in term.getvalue() and "val=0.750" in term.getvalue()
    assert "epoch 1/3 loss" not in term.getvalue()  # the bar, not the plain lines
    quiet = io.StringIO()
    q = EpochProgress("lstm", 0, 3, enabled=False, stream=quiet)
    q.update(metrics(0))
    assert quiet.getvalue() == ""
