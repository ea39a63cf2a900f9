"""Shared fixtures: random generator weights, and clean skips for hardware this machine lacks."""
from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys

import numpy as np
import pytest


def _engine_cuda_devices() -> int | None:
    """How many GPUs srgan_fast._C's own CUDA runtime sees (0 where its driver is missing), or None where the
    module was built without CUDA. Asked in a child process: the runtime's start-up must not happen in this
    one, whose tests fork."""
    probe = ("from srgan_fast import _C\n"
             "try:\n    print(_C.cuda_device_count() if hasattr(_C, 'cuda_device_count') else -1)\n"
             "except RuntimeError:\n    print(0)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        return None
    count = int(result.stdout.strip() or -1)
    return None if count < 0 else count


def _cuda_available() -> bool:
    """GPU tests run where the engine's own runtime sees a GPU. Where the module was built without CUDA they run
    too if torch sees one, and fail (cuda_helpers.cuda_native) rather than skip: that build is the mistake."""
    devices = _engine_cuda_devices()
    if devices is not None:
        return devices > 0
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _native_reason() -> str | None:
    try:
        import srgan_fast._C  # noqa: F401
    except ImportError as exc:
        return f"srgan_fast._C not built ({exc})"
    return None


def pytest_collection_modifyitems(config, items):
    cuda = _cuda_available()
    cuda_skip = None if cuda else pytest.mark.skip(reason="no CUDA GPU on this machine")
    trt_skip = (None if cuda and importlib.util.find_spec("tensorrt")
                else pytest.mark.skip(reason="TensorRT or a CUDA GPU is missing"))
    native_reason = _native_reason()
    native_skip = pytest.mark.skip(reason=native_reason) if native_reason else None
    for item in items:
        if "cuda" in item.keywords and cuda_skip:
            item.add_marker(cuda_skip)
        if "tensorrt" in item.keywords and trt_skip:
            item.add_marker(trt_skip)
        if "native" in item.keywords and native_skip:
            item.add_marker(native_skip)


def randomise_batchnorm_and_prelu(model, spread: float) -> None:
    """BN statistics/affine and PReLU slopes away from their identity-like defaults, so that folding and
    every per-channel path is exercised; ``spread`` bounds the mean and bias offsets."""
    import torch

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-spread, spread)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-spread, spread)
            if isinstance(module, torch.nn.PReLU):
                module.weight.uniform_(0.05, 0.4)


def random_generator_weights(num_blocks: int = 2, channels: int = 8, seed: int = 0):
    """A folded generator with random weights, as ``GeneratorWeights``: small and fast for tests.

    Scales are chosen so that activations stay O(1) through the network (like a trained model),
    otherwise relative errors would be measured on noise.
    """
    import torch

    from srgan_fast.reference.model import Generator, fold_batchnorm
    from srgan_fast.weights import weights_for

    torch.manual_seed(seed)
    generator = Generator(num_blocks, channels, batch_norm=True)
    randomise_batchnorm_and_prelu(generator, spread=0.1)
    folded = fold_batchnorm(generator.eval())
    tensors = {k: v.detach().numpy().astype(np.float32) for k, v in folded.state_dict().items()}
    return weights_for(folded.network, tensors, "random", source="<random>")


@pytest.fixture
def small_weights():
    return random_generator_weights()


def noise_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Uniform uint8 noise, [height, width, channels]: every pixel value, no structure a tiler could hide."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> str:
    """A one-block, four-channel model in a weights file, for tests that load models by path (CLI, workers)."""
    from srgan_fast.weights import save_weights

    weights = random_generator_weights(1, 4)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_weights(path, weights.tensors, weights.metadata)
    return str(path)


@pytest.fixture(scope="session")
def tiny_weights():
    """A random 2-block, 8-channel generator (halo 12): with 24-pixel tiles a 100² image is 25 windows."""
    return random_generator_weights(num_blocks=2, channels=8)


@contextlib.contextmanager
def command_session(arguments: list[str], stderr_path):
    """A command running in a session of its own, its stderr in a file (a pipe nobody reads meanwhile would fill);
    at the end it and every process of its group (a Ray instance it started, say) are killed. Never inherits
    RAY_ADDRESS: a test's Ray is its own, never a cluster something else started on this machine."""
    environment = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    with open(stderr_path, "w") as errors:
        process = subprocess.Popen(arguments, stderr=errors, env={**environment, "OMP_WAIT_POLICY": "passive"},
                                   start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
