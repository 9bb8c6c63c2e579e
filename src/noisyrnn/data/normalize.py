"""Per-channel z-scoring of user data, fitted on the training split's real steps only.

The statistics travel with the checkpoint (``model.json``, key ``data.normalization``) and
are applied again to new data at predict/evaluate time; padded steps stay 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_STD = 1e-8


@dataclass(frozen=True)
class ChannelNormalizer:
    """x -> (x - mean) / std per channel (the last axis)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, x: np.ndarray, lengths: np.ndarray) -> "ChannelNormalizer":
        """Mean and std (population) of every channel over the real steps of ``x`` (n, T, d)."""
        real = np.arange(x.shape[1])[None, :] < lengths[:, None]
        values = x[real].astype(np.float64)  # (steps, d)
        std = values.std(axis=0)
        std = np.where(std < MIN_STD, 1.0, std)  # a constant channel is only centred
        return cls(tuple(float(v) for v in values.mean(axis=0)), tuple(float(v) for v in std))

    def apply(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        if x.shape[-1] != len(self.mean):
            raise ValueError(f"data have {x.shape[-1]} channel(s) but the normalisation was fitted on {len(self.mean)}")
        out = (x - np.asarray(self.mean, dtype=np.float64)) / np.asarray(self.std, dtype=np.float64)
        real = np.arange(x.shape[1])[None, :, None] < lengths[:, None, None]
        return np.where(real, out, 0.0).astype(np.float32)

    def to_dict(self) -> dict:
        return {"kind": "channel_zscore", "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict | None) -> "ChannelNormalizer | None":
        if d is None:
            return None
        if d.get("kind") != "channel_zscore":
            raise ValueError(f"unknown normalisation kind {d.get('kind')!r}")
        return cls(tuple(d["mean"]), tuple(d["std"]))
