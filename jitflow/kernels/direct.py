"""Direct convolution kernels for stride-1 convs with few input channels (a network's first layer).

With one or three input channels im2col's patches are as large as the conv's output and the GEMM
over them has K = 25, far from what BLAS runs well.

- forward: blocks of output pixels with their channels in vector registers (`pixel_conv.py`), the bias
  and ReLU applied as each pixel is written, and a 2 x 2 pool after it applied to its rows on the spot.
- filter gradient: blocks of taps x output channels in vector registers, run over every output pixel
  of an image (`filter_taps.py`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitflow.kernels import filter_taps, pixel_conv

# Input channels up to which a stride-1 conv runs these kernels instead of im2col + GEMM (bench/README.md:
# W7's first layer, C = 1).
MAX_CHANNELS = 4


def applies(c: int, g: Any) -> bool:
    """True when a conv with `c` input channels and geometry `g` (a `conv.ConvGeom`) runs here."""
    return c <= MAX_CHANNELS and g.sh == 1 and g.sw == 1


def forward(x: np.ndarray, f: np.ndarray, g: Any, out: np.ndarray, scratch: Any,
            bias: np.ndarray | None = None, relu: bool = False, pool: int = 0,
            full: np.ndarray | None = None) -> np.ndarray:
    """conv2d of NHWC `x` with (KH, KW, C, O) `f` into `out`, with the optional bias and ReLU applied (and
    the 2 x 2 `pool` of `pixel_conv`, the unpooled output also into `full` when given): blocks of output
    pixels with their channels in vector registers."""
    return pixel_conv.forward(x, f, g, out, scratch, bias, relu, pool, full=full)


def filter_grad(x: np.ndarray, dy: np.ndarray, g: Any, df: np.ndarray, scratch: Any, threads: int) -> np.ndarray:
    """The (KH, KW, C, O) filter gradient `df` of a conv of `x` whose output gradient is `dy`, on up to
    `threads` threads."""
    return filter_taps.filter_grad(x, dy, g, df, scratch, threads)
