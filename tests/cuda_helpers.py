"""Shared by the CUDA tests: the CUDA part of srgan_fast._C, and the precision-derived error comparison."""
from __future__ import annotations

import numpy as np
import pytest


def cuda_native():
    """srgan_fast._C with its CUDA bindings. With a GPU present, a build without them is a failure, not a skip."""
    from srgan_fast import _C

    if not hasattr(_C, "CudaEngine"):
        pytest.fail("a CUDA GPU is present but srgan_fast._C was built without CUDA "
                    "(SRGAN_FAST_CUDA=ON pip install -e . --no-build-isolation)")
    return _C


def as_float64(x) -> np.ndarray:
    """NumPy arrays and torch tensors of any dtype (bf16 included, which NumPy lacks) as float64 NumPy."""
    if hasattr(x, "detach"):
        return x.detach().double().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def relative_error(value, reference) -> float:
    value, reference = as_float64(value), as_float64(reference)
    return float(np.linalg.norm(value - reference) / np.linalg.norm(reference))


def max_error(value, reference) -> float:
    return float(np.abs(as_float64(value) - as_float64(reference)).max())


def assert_at_most_twice_torch_error(ours, torch_low_precision, reference, what: str) -> None:
    """The project's accuracy rule: a low-precision fast path may be at most 2x as wrong as torch's own run at
    that precision, both measured against a float64 (or float32) reference; in the norm and at the worst value."""
    torch_rel, ours_rel = relative_error(torch_low_precision, reference), relative_error(ours, reference)
    torch_max, ours_max = max_error(torch_low_precision, reference), max_error(ours, reference)
    assert torch_rel > 0, f"{what}: torch's low-precision run is exact, the comparison would be vacuous"
    assert ours_rel <= 2 * torch_rel, f"{what}: relative error {ours_rel:.3g} > 2 x torch's {torch_rel:.3g}"
    assert ours_max <= 2 * torch_max, f"{what}: max error {ours_max:.3g} > 2 x torch's {torch_max:.3g}"
