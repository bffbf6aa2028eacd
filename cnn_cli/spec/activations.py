"""Activation functions by name: the names a config may use and the integer
codes the kernels dispatch on.

Plain ints, so a kernel takes the activation as an ordinary runtime argument
(one compiled specialisation serves every activation) and config validation
reads them without importing Numba.
"""

IDENTITY = 0
RELU = 1
SIGMOID = 2
TANH = 3
SCALED_TANH = 4

CODES = {"identity": IDENTITY, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH, "scaled_tanh": SCALED_TANH}
NAMES = tuple(CODES)

# LeCun 1998, appendix A: f(z) = A·tanh(S·z) with A = 1.7159, S = 2/3, chosen so
# that f(±1) = ±1 and the effective gain is near 1 around the origin.
LECUN_A = 1.7159
LECUN_S = 2.0 / 3.0
