"""Backend "cuda" where it cannot run (no GPU, no driver, no CUDA in the build): it must say why, and `auto`
must pass it over. Runs on every machine; the GPU tests are test_cuda_engine.py and test_cuda_kernels.py."""
from __future__ import annotations

import re
import types

import numpy as np
import pytest

from conftest import random_generator_weights
from srgan_fast.backends import BackendUnavailable, availability, ranked_backends, cuda_backend
from srgan_fast.backends.cuda_backend import CudaBackend


@pytest.fixture
def fake_native(monkeypatch):
    """Replace srgan_fast._C as the backend sees it, and forget the cached probe before and after."""
    def install(module):
        monkeypatch.setattr(cuda_backend, "_native_module", lambda: module)
        cuda_backend._probe.cache_clear()

    yield install
    cuda_backend._probe.cache_clear()


def _raise(exc):
    raise exc


def test_extension_not_built(fake_native, monkeypatch):
    fake_native(None)
    monkeypatch.setattr(cuda_backend, "_native_module",
                        lambda: _raise(ImportError("No module named 'srgan_fast._C'")))
    assert CudaBackend.unavailable_reason() == "srgan_fast._C is not built (No module named 'srgan_fast._C')"


def test_extension_built_without_cuda(fake_native):
    fake_native(types.SimpleNamespace())
    assert CudaBackend.unavailable_reason().startswith("srgan_fast._C was built without CUDA (rebuild with nvcc")


def test_no_gpu(fake_native):
    fake_native(types.SimpleNamespace(CudaEngine=object, cuda_device_count=lambda: 0))
    reason = CudaBackend.unavailable_reason()
    assert reason == "no CUDA GPU found"
    assert availability()["cuda"] == reason
    with pytest.raises(BackendUnavailable, match="no CUDA GPU found"):
        CudaBackend(random_generator_weights(), "cuda", "fp16")
    assert ranked_backends("cuda")[0] != "cuda"  # auto falls back (to torch, which reports its own availability)


def test_this_machine_reports_a_reason_or_runs():
    """Unpatched: without a GPU the reason is a non-empty one-liner; with one, the GPU tests cover it."""
    cuda_backend._probe.cache_clear()
    reason = CudaBackend.unavailable_reason()
    if reason is None:
        pytest.skip("a CUDA GPU is usable here: see test_cuda_engine.py")
    assert reason and "\n" not in reason
    with pytest.raises(BackendUnavailable, match=re.escape(reason[:30])):
        CudaBackend(random_generator_weights(), "cuda", "fp16")


def test_registered_above_torch_for_cuda_only():
    assert CudaBackend.auto_priority == {"cuda": 30}
    assert CudaBackend.supported_precisions("cuda") == ("fp16", "bf16")


def test_kernel_params_are_validated_before_any_gpu_work():
    """Needs the CUDA build, not a GPU: validation throws before the first CUDA call."""
    from srgan_fast import _C

    if not hasattr(_C, "cuda_ops"):
        pytest.skip("srgan_fast._C built without CUDA")
    with pytest.raises(ValueError, match="cin_padded must be a positive multiple of 16, got 8"):
        _C.cuda_ops.conv_mma(precision="fp16", input=16, weights=16, bias=16, alpha=0, residual=0, output=16,
                             batch=1, height=4, width=4, in_channels=8, cin_padded=8, cout=16, cout_padded=16,
                             ksize=3, input_kind="storage", output_kind="storage")
    with pytest.raises(ValueError, match="output kind must be .* got 'rgb'"):
        _C.cuda_ops.conv_mma(precision="fp16", input=16, weights=16, bias=16, alpha=0, residual=0, output=16,
                             batch=1, height=4, width=4, in_channels=16, cin_padded=16, cout=16, cout_padded=16,
                             ksize=3, input_kind="storage", output_kind="rgb")
    with pytest.raises(ValueError, match=r"pack_conv_weights: need cin_padded >= cin .* got cin 20 -> 16"):
        _C.cuda_ops.pack_conv_weights(np.zeros((16, 20, 3, 3), np.float32), 16, 16, "fp16")


def test_subpixel_major_packing_puts_torch_channel_4c_plus_s_at_row_s_c():
    """The upsampler's packing (what the PixelShuffle(2) store expects); needs the CUDA build, not a GPU."""
    from srgan_fast import _C

    if not hasattr(_C, "cuda_ops"):
        pytest.skip("srgan_fast._C built without CUDA")
    channels, cin = 8, 16
    weight = np.random.default_rng(0).integers(-8, 8, (4 * channels, cin, 3, 3)).astype(np.float32)
    plain = _C.cuda_ops.pack_conv_weights(weight, cin, 4 * channels, "fp16")
    shuffled = _C.cuda_ops.pack_conv_weights(weight, cin, 4 * channels, "fp16", subpixel_major=True)
    for c in range(channels):
        for s in range(4):
            np.testing.assert_array_equal(shuffled[s * channels + c], plain[4 * c + s])
    with pytest.raises(ValueError, match="sub-pixel-major packing needs cout % 4 == 0, got 6"):
        _C.cuda_ops.pack_conv_weights(np.zeros((6, 16, 3, 3), np.float32), 16, 8, "fp16", subpixel_major=True)


def test_profile_command_reports_why_it_cannot_run(fake_native, capsys):
    import argparse

    fake_native(types.SimpleNamespace(CudaEngine=object, cuda_device_count=lambda: 0))
    from srgan_fast.cli import cuda_profile

    parser = argparse.ArgumentParser()
    cuda_profile.register(parser.add_subparsers())
    args = parser.parse_args(["cuda-profile", "--size", "64x96"])
    assert args.func(args) == 2  # as --device cuda without a GPU in every command
    assert capsys.readouterr().err == "error: the cuda backend cannot run here: no CUDA GPU found\n"
    args = parser.parse_args(["cuda-profile", "--size", "64by96"])
    assert args.func(args) == 2
    assert capsys.readouterr().err == "error: --size: expected a size N or HxW (e.g. 512 or 540x960), got '64by96'\n"
