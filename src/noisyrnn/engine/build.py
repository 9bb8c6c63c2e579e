"""The C++ loops of the cell engine on the CPU (float32), and the Philox noise fill.

Measured on the project's 2-core machine (``benchmarks/bench_cpp_loop.py``): per step a
Python loop of ATen calls runs one GEMM and four or more small elementwise kernels, and those
kernels, not Python dispatch, cost most of the time above the GEMMs. Here each step is one
GEMM (``csrc/gemm.h``: AVX-512 with the weight packed once per call, ATen's BLAS where
AVX-512 is absent) plus a single fused, vectorised pass over the row, for every drift form of
:mod:`noisyrnn.engine.cells` (namespace ``cells``: eq (3), the antisymmetric RNN, expRNN's
modReLU, coRNN's IMEX step), forward and hand-written backward, with the noise scheme's
coefficients computed in that pass from Philox keys (the numbers ``philox_fill`` would write
into a (M, B, N) tensor; regenerated in the backward pass).

The sources are the files of ``engine/csrc/`` (``ops.cpp`` with the headers ``philox.h``,
``gemm.h`` and ``forms.h``), shipped in the wheel. The extension is compiled on first use (or by
``python -m noisyrnn.engine.build``, which ``make install`` runs) with the machine's C++ compiler
(``torch.utils.cpp_extension.load``, about 40 s once, cached by torch in
``~/.cache/torch_extensions`` under :func:`extension_name`, which changes with the sources and flags) with ``-O3 -march=native
-mprefer-vector-width=512 -ffast-math -fopenmp``: glibc's vector ``tanhf`` (16 lanes where
AVX-512 exists), the Philox rounds in AVX-512 intrinsics (a portable loop elsewhere), and OpenMP
for the parallel tasks (the libgomp torch itself loads, so one thread pool). Linear encoders are
applied inside the step loop (``u`` holds the raw inputs and ``in_wt``, ``in_b`` the projection).
Results agree with the ATen path to float32 rounding (tested). If no
compiler is available or compilation fails, :func:`kernels` returns None (and says why once)
and the ATen loops run instead; :func:`noisyrnn.engine.use_backend` chooses explicitly.

Work is split into tasks of (model, block of batch rows) run in parallel on torch's intra-op
threads, each task's GEMMs single-threaded: one model's batch is split into one block per
thread, an ensemble with at least as many members as threads runs one task per member. Per
step the GEMMs are small (B x N by N x 2N), and splitting each of them across threads costs
a synchronisation per step; independent row blocks need none (measured: 147 -> 137 ms per
noise-free pixel-MNIST training step on 2 cores). With the AVX-512 GEMM every output is the
same sum in the same order whatever the split, so results do not depend on the thread count
(tested); with ATen's BLAS they may, through float32 rounding.

``philox_fill`` writes Philox4x32-10 words, uniforms or Box-Muller normals in parallel (each
value a function of its index only, so any thread count gives the same numbers); it serves
:mod:`noisyrnn.philox`, whose pure-torch fallback computes the same words.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = ("ops.cpp",)
HEADERS = ("philox.h", "gemm.h", "forms.h")
CFLAGS = ("-O3", "-march=native", "-mprefer-vector-width=512", "-ffast-math", "-fopenmp")
LDFLAGS = ("-fopenmp",)

_LOCK = threading.Lock()
_BUILT: dict = {}  # the loaded ops (or None after a failed build): one extension per process


def extension_name() -> str:
    """The extension's name: ``noisyrnn_engine_`` + a digest of this CPU's feature flags (the
    build uses ``-march=native``: a cache shared between machines must not hand one machine's
    binary to another) + a digest of the sources and flags, so that two installs of the same
    code share one build and two versions never rebuild each other's."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    cpu = hashlib.sha1((platform.machine() + flags).encode()).hexdigest()[:12]
    code = hashlib.sha1(b"".join((CSRC / f).read_bytes() for f in SOURCES + HEADERS)
                        + " ".join(CFLAGS + LDFLAGS).encode()).hexdigest()[:12]
    return f"noisyrnn_engine_{cpu}_{code}"


def staged_sources(name: str) -> Path:
    """The sources copied (once, atomically) to a folder named after the build: torch's JIT
    hashes the include path with the sources, so compiling every install's own ``csrc/`` would
    make two checkouts of the same code rebuild each other's extension in turn."""
    from torch.utils.cpp_extension import get_default_build_root

    stage = Path(get_default_build_root()) / f"{name}_src"
    if not stage.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}_src.", dir=stage.parent if stage.parent.is_dir() else None))
        for f in SOURCES + HEADERS:
            shutil.copy2(CSRC / f, tmp / f)
        stage.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp, stage)
        except OSError:  # another process staged it first
            shutil.rmtree(tmp, ignore_errors=True)
    return stage


def kernels():
    """``torch.ops.noisyrnn_cpu`` (compiling the extension on first use), or None where it
    cannot be built (no compiler, a build error: a warning names the cause, once)."""
    with _LOCK:
        if "ops" not in _BUILT:
            _BUILT["ops"] = _build()
        return _BUILT["ops"]


def _build():
    try:
        import torch
        from torch.utils.cpp_extension import load

        name = extension_name()
        stage = staged_sources(name)
        load(name, sources=[str(stage / s) for s in SOURCES], extra_include_paths=[str(stage)],
             extra_cflags=list(CFLAGS), extra_ldflags=list(LDFLAGS), is_python_module=False, verbose=False)
        return torch.ops.noisyrnn_cpu
    except Exception as err:  # noqa: BLE001 - any build failure falls back to the ATen loops
        warnings.warn(f"noisyrnn: C++ engine unavailable ({type(err).__name__}: {str(err)[:500]}); "
                      "using the slower ATen loops", RuntimeWarning, stacklevel=3)
        return None


def main() -> int:
    """``python -m noisyrnn.engine.build``: compile the extension now (``make install`` does, so
    the first training run does not spend the ~40 s compile); exit status 1 if unavailable."""
    ops = kernels()
    print(f"noisyrnn C++ engine {extension_name()}: " + ("ready" if ops is not None else "unavailable (ATen loops)"))
    return 0 if ops is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
