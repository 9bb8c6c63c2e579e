// The drift forms, noise kinds and operand layouts of the cell engine, declared once: C++
// includes this header and noisyrnn.engine.forms reads the same lines (NAME = value) for Python.
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
// Columns of the per-member scalars the Python side packs into two tensors
// (noisyrnn.engine.cells.CellSpec): int64 (S, 3) and float64 (S, 8).
enum class MemberInt : int64_t {
  KIND = 0,   // a NoiseKind
  KEY_U = 1,  // Philox key of the uniform factor (research scheme)
  KEY_N = 2,  // Philox key of the normals
};
enum class MemberReal : int64_t {
  MSCALE = 0,  // research scheme: factor = mshift + mscale * uniform
  MSHIFT = 1,
  ADD = 2,     // research scheme: additive normal's scale
  S1 = 3,      // eq (4): sigma1 (additive)
  S2 = 4,      // eq (4): sigma2 (multiplicative)
  GAMMA = 5,   // coRNN's gamma, epsilon and position step
  EPS = 6,
  YSTEP = 7,
};
}  // namespace cells
