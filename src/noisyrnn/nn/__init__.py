"""Noisy recurrent layers for any PyTorch model (``torch.nn.RNN``'s conventions), and the
explicit control of their noise injection."""

from .layers import NRNN, AntisymmetricRNN, CoRNN, ExpRNN, LipschitzRNN, NoisyRNN
from .noise import noise_injection

__all__ = ["NoisyRNN", "NRNN", "LipschitzRNN", "AntisymmetricRNN", "CoRNN", "ExpRNN", "noise_injection"]
