"""jitflow: TensorFlow 1.x graph programs, fused and compiled with Numba.

This module is the tf-style namespace: re-exports only, no logic.
"""
__version__ = "0.1.0"
