// The drift forms the cell engine runs, declared once: C++ includes this header and
// noisyrnn.engine.forms reads the same lines (NAME = value) for Python.
#pragma once
#include <cstdint>

namespace cells {
enum Form : int64_t {
  LIPSCHITZ = 0,  // eq (3): alpha A h + tanh(W h + u)
  TANH = 1,       // antisymmetric RNN: tanh(W h + u)
  MODRELU = 2,    // expRNN: modReLU(Q h + u, b) - h
  CORNN = 3,      // coRNN's IMEX step on (y, z)
  GATED = 4,      // gated antisymmetric RNN
};
// noise kinds of the in-loop schemes (noisyrnn.sde.noise.LoopNoise.kind)
enum NoiseKind : int64_t {
  DETERMINISTIC = 0,  // eq (6): c = dt
  RESEARCH = 1,       // the authors' code: uniform factor, additive normal
  EQ4 = 2,            // eq (4)-(5): Euler-Maruyama with sigma1, sigma2
};
}  // namespace cells
