"""The cell engine's drift forms, noise kinds and per-member scalar columns, read from ``csrc/forms.h`` (declared once,
for both languages)."""

from __future__ import annotations

import re
from pathlib import Path

HEADER = Path(__file__).resolve().parent / "csrc" / "forms.h"


def _enum(name: str) -> dict[str, int]:
    text = HEADER.read_text()
    body = re.search(r"enum\s+(?:class\s+)?" + name + r"\s*:\s*int64_t\s*\{(.*?)\};", text, re.S)
    if body is None:
        raise RuntimeError(f"{HEADER} declares no enum {name}")
    return {k.lower(): int(v) for k, v in re.findall(r"([A-Z0-9_]+)\s*=\s*([0-9]+)", body.group(1))}


FORMS: dict[str, int] = _enum("Form")  # {"lipschitz": 0, "tanh": 1, "modrelu": 2, "cornn": 3, "gated": 4}
NOISE_KINDS: dict[str, int] = _enum("NoiseKind")  # {"deterministic": 0, "research": 1, "eq4": 2}
MEMBER_INTS: dict[str, int] = _enum("MemberInt")  # columns of the packed int64 per-member scalars
MEMBER_REALS: dict[str, int] = _enum("MemberReal")  # columns of the packed float64 per-member scalars
