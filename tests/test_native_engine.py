"""The whole native engine (srgan_fast._C.Engine, backend "native") against the torch generator in float64:
every dispatch path, precision and image dtype, odd and 1x1 sizes, batches, buffer reuse, bad arguments."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import random_generator_weights
from srgan_fast.backends.base import engine_layers

pytestmark = pytest.mark.native
torch = pytest.importorskip("torch")


def _C():
    from srgan_fast import _C

    return _C


def relative_error(got, reference) -> float:
    got = np.asarray(got, dtype=np.float64)
    return float(np.abs(got - reference).max() / max(np.abs(reference).max(), 1e-30))


def torch_output(weights, tiles: np.ndarray, dtype=torch.float64) -> np.ndarray:
    """The generator on [N, h, w, 3] float tiles in [0, 1], in `dtype`, clamped, as float64 NHWC."""
    from srgan_fast.backends.torch_backend import build_generator

    model = build_generator(weights).to(dtype)
    with torch.no_grad():
        x = torch.from_numpy(tiles.astype(np.float64)).to(dtype).permute(0, 3, 1, 2)
        return model(x).double().clamp(0, 1).permute(0, 2, 3, 1).numpy()


def engine(weights, **options):
    network = weights.network
    return _C().Engine(engine_layers(weights), network.scale, network.image_skip or "none", **options)


@pytest.fixture(scope="module")
def weights():
    return random_generator_weights(num_blocks=2, channels=8, seed=21)


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 5, 7), (1, 11, 6)])
def test_fp32_matches_float64_torch_on_every_path(weights, shape):
    tiles = np.random.default_rng(22).random((*shape, 3), dtype=np.float32)
    reference = torch_output(weights, tiles)
    for path in _C().cpu_info()["paths_fp32"]:
        out = engine(weights, path=path, threads=2).run(tiles)
        assert out.shape == (shape[0], 4 * shape[1], 4 * shape[2], 3) and out.dtype == np.float32
        assert relative_error(out, reference) <= 1e-5, path


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_images_round_like_the_reference(weights, dtype):
    full = np.iinfo(dtype).max
    tiles = np.random.default_rng(23).integers(0, full + 1, (2, 6, 9, 3)).astype(dtype)
    expected = np.round(torch_output(weights, tiles / full) * full)
    for path in _C().cpu_info()["paths_fp32"]:
        out = engine(weights, path=path).run(tiles)
        assert out.dtype == dtype
        diff = np.abs(out.astype(np.float64) - expected)
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99, path  # only float ties at .5 may differ


def test_bf16_is_within_twice_torch_bf16_error():
    C = _C()
    if not C.cpu_info()["paths_bf16"]:
        pytest.skip("this CPU has no AVX512_BF16")
    weights = random_generator_weights(num_blocks=2, channels=16, seed=24)
    tiles = np.random.default_rng(25).random((2, 9, 13, 3), dtype=np.float32)
    reference = torch_output(weights, tiles)
    torch_error = relative_error(torch_output(weights, tiles, torch.bfloat16), reference)
    out = engine(weights, precision="bf16").run(tiles)
    assert relative_error(out, reference) <= 2 * torch_error


def test_real_width_64_channels():
    weights = random_generator_weights(num_blocks=3, channels=64, seed=26)
    tiles = np.random.default_rng(27).random((1, 10, 7, 3), dtype=np.float32)
    reference = torch_output(weights, tiles)
    assert relative_error(engine(weights).run(tiles), reference) <= 1e-5
    if _C().cpu_info()["paths_bf16"]:
        torch_error = relative_error(torch_output(weights, tiles, torch.bfloat16), reference)
        assert relative_error(engine(weights, precision="bf16").run(tiles), reference) <= 2 * torch_error


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_batch_equals_one_by_one_and_buffers_are_reused_cleanly(weights, precision):
    if precision == "bf16" and not _C().cpu_info()["paths_bf16"]:
        pytest.skip("this CPU has no AVX512_BF16")
    rng = np.random.default_rng(28)
    batch = rng.integers(0, 256, (3, 7, 10, 3), dtype=np.uint8)
    other = rng.integers(0, 256, (2, 12, 5, 3), dtype=np.uint8)
    e = engine(weights, precision=precision)
    together = e.run(batch)
    e.run(other)  # a different geometry in between: the halos must be zero again afterwards
    alone = np.concatenate([e.run(batch[i:i + 1]) for i in range(3)])
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(engine(weights, precision=precision, threads=1).run(batch), together)


def test_backend_runs_without_torch(weights, tmp_path):
    """Inference needs no torch: the backend in a process where importing torch fails."""
    from safetensors.numpy import save_file

    path = tmp_path / "w.safetensors"
    save_file(weights.tensors, str(path), metadata=weights.metadata)
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from srgan_fast.weights import load_weights\n"
        "from srgan_fast.backends.native_backend import NativeBackend\n"
        f"b = NativeBackend(load_weights({str(path)!r}))\n"
        "out = b.run(np.zeros((1, 3, 5, 3), np.uint8))\n"
        "assert out.shape == (1, 12, 20, 3) and out.dtype == np.uint8, out.shape\n"
        "print('ok', b.describe())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("ok native (cpu, fp32"), result.stderr


def test_registered_backend_and_auto_prefers_it_on_cpu(weights):
    from srgan_fast.backends import availability, ranked_backends, get_backend_class

    assert availability()["native"] is None
    assert ranked_backends("cpu")[0] == "native"
    backend = get_backend_class("native")(weights, "cpu", "fp32", threads=1)
    tiles = np.random.default_rng(29).random((1, 4, 4, 3), dtype=np.float32)
    assert relative_error(backend.run(tiles), torch_output(weights, tiles)) <= 1e-5
    # The engine's workspace at each size: halos and per-thread scratch make small windows dearer per pixel.
    small, large = backend.window_bytes(64, 64) / 64**2, backend.window_bytes(512, 512) / 512**2
    assert 0 < large < small < 100_000
    with pytest.raises(ValueError, match="the native backend runs on 'cpu', got device 'cuda'"):
        get_backend_class("native")(weights, "cuda", "fp32")
    with pytest.raises(ValueError, match=r"supports precision fp32.*got 'fp16'"):
        get_backend_class("native")(weights, "cpu", "fp16")


def test_bad_tiles_raise_clear_errors(weights):
    e = engine(weights)
    good = np.zeros((1, 4, 4, 3), np.uint8)
    cases = [
        (np.zeros((4, 4, 3), np.uint8), r"tiles: expected an NHWC array of shape \[N, h, w, 3\], got shape \(4, 4, 3\)"),
        (np.zeros((1, 4, 4, 4), np.uint8), r"got shape \(1, 4, 4, 4\)"),
        (good.astype(np.float64), "tiles: expected dtype uint8, uint16 or float32, got float64"),
        (good.astype(np.int32), "expected dtype uint8, uint16 or float32, got int32"),
        (np.zeros((1, 4, 8, 3), np.uint8)[:, :, ::2], r"tiles: expected a C-contiguous array .*got strides"),
        (np.zeros((0, 4, 4, 3), np.uint8), r"tiles: expected N, h, w >= 1, got shape \(0, 4, 4, 3\)"),
    ]
    for tiles, message in cases:
        with pytest.raises(ValueError, match=message):
            e.run(tiles)


def test_mismatched_layers_and_options_raise_clear_errors(weights):
    C, layers, scale = _C(), engine_layers(weights), weights.network.scale

    def changed(index, **fields):
        return [dict(layer, **fields) if i == index else layer for i, layer in enumerate(layers)]

    with pytest.raises(ValueError, match=r"layer 2 'blocks.0.conv2': its input does not have 16 channels at level 1"):
        C.Engine(changed(2, in_channels=16, weight=np.zeros((8, 16, 3, 3), np.float32)), scale)
    with pytest.raises(ValueError, match="layer 1 'blocks.0.conv1': sources and residuals must be earlier layers"):
        C.Engine(changed(1, source=5), scale)
    with pytest.raises(ValueError, match="weights tensor 'tail.bias': expected shape \\(3,\\), got \\(4,\\)"):
        C.Engine(changed(len(layers) - 1, bias=np.zeros(4, np.float32)), scale)
    with pytest.raises(ValueError, match="weights tensor 'tail.bias': expected dtype float32, got float64"):
        C.Engine(changed(len(layers) - 1, bias=np.zeros(3)), scale)
    with pytest.raises(ValueError, match="weights tensor 'tail.bias': expected a numpy float32 array, got <class 'list'>"):
        C.Engine(changed(len(layers) - 1, bias=[0.0, 0.0, 0.0]), scale)
    with pytest.raises(ValueError, match="the last layer must give 3 channels at level 2"):
        C.Engine(layers, 2)
    with pytest.raises(ValueError, match="unknown image_skip 'cubic'"):
        C.Engine(layers, scale, "cubic")
    with pytest.raises(ValueError, match="unknown precision 'int4': expected 'fp32', 'fp16', 'bf16' or 'int8'"):
        C.Engine(layers, scale, precision="int4")
    with pytest.raises(ValueError, match="the CPU engine runs precision 'fp32', 'bf16' or 'int8', got 'fp16'"):
        C.Engine(layers, scale, precision="fp16")
    with pytest.raises(ValueError, match="unknown cpu path 'neon'"):
        C.Engine(layers, scale, path="neon")
    with pytest.raises(ValueError, match=r"threads must be >= 0 \(0: every core\), got -2"):
        C.Engine(layers, scale, threads=-2)
    with pytest.raises(ValueError, match="cannot run layer 1 'blocks.0.conv1': the CPU ops run 3x3 convs anywhere "
                                         "and 9x9 convs only from the image or to RGB at the end, got a 5x5 conv"):
        C.Engine(changed(1, kernel=5, weight=np.zeros((8, 8, 5, 5), np.float32)), scale)


def test_build_info_describes_the_build():
    info = _C().build_info()
    assert "scalar" in info["cpu_paths_compiled"] and isinstance(info["cuda"], bool)
    assert info["compiler"] and isinstance(info["cuda_architectures"], list)
    cpu = _C().cpu_info()
    assert cpu["paths_fp32"][:2] == ["reference", "scalar"]
    assert set(cpu["paths_bf16"]) <= {"avx512", "amx"}
    assert ("avx512" in cpu["paths_bf16"]) == cpu["avx512_bf16"]
    assert ("amx" in cpu["paths_bf16"]) == cpu["amx_bf16"] and ("amx" in cpu["paths_int8"]) == cpu["amx_int8"]


def test_steady_state_does_not_grow_memory(weights):
    """Buffers are allocated for a tile size once: repeated calls of that size do not raise the peak RSS."""
    import resource

    e = engine(weights)
    tiles = np.random.default_rng(30).integers(0, 256, (2, 48, 40, 3), dtype=np.uint8)
    e.run(tiles)
    e.run(tiles)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(5):
        e.run(tiles)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 1024  # KiB: no new buffers
    # With whole maps the working set scales with the tile: 4x the pixels, about 4x the bytes (halos aside).
    whole = engine(weights, tail_band_rows=0)
    small, large = whole.workspace_bytes(1, 64, 64), whole.workspace_bytes(1, 128, 128)
    assert 3.0 < large / small < 4.0
    # Banded, the largest map (the tail's input) grows with the width only.
    assert e.workspace_bytes(1, 128, 128) < 0.8 * large


def _banded_networks():
    from srgan_fast.architecture import msrresnet, rrdbnet, srresnet

    return {f"srresnet-x{s}": srresnet(1, 16, scale=s) for s in (2, 4, 8)} | {
        "msrresnet": msrresnet(1, 16), "msrresnet-x2": msrresnet(1, 16, scale=2), "rrdbnet": rrdbnet(1, 16, 16)}


def _precisions():
    return ["fp32"] + (["bf16"] if "avx512" in _C().cpu_info()["paths_bf16"] else [])


def test_the_default_bands_are_48_rows_on_every_path():
    """tail_band_rows=-1, the default: bands of 48 rows, on Winograd convs (fp32) as on direct ones (bf16 on
    AMX tiles, where 12 rows had been chosen before), and they differ from bands of 12."""
    from srgan_fast.weights import random_weights

    weights = random_weights(_banded_networks()["rrdbnet"], seed=1)

    def bands(**options):
        return [m["band_rows"] for m in engine(weights, **options).plan["maps"]]

    assert bands(precision="fp32") == bands(precision="fp32", tail_band_rows=48) != bands(tail_band_rows=12)
    if "amx_emulated" in _C().build_info()["cpu_paths_compiled"] and _C().cpu_info()["avx512_vnni"]:
        tiles = {"precision": "bf16", "path": "amx_emulated"}
        assert bands(**tiles) == bands(**tiles, tail_band_rows=48) != bands(**tiles, tail_band_rows=12)


@pytest.mark.parametrize("band_rows", [12, 24, 96])
@pytest.mark.parametrize("name", list(_banded_networks()))
def test_the_banded_chain_gives_the_bits_of_whole_maps(band_rows, name):
    """The steps at the output's resolution (the last upsampler and every conv after it: the tail, or
    MSRResNet's and RRDBNet's HR conv and last conv before the image store) in bands, against whole maps: same
    bits, also where a band ends inside a Winograd tile, at the image's last rows, and per image of a batch."""
    from srgan_fast.weights import random_weights

    network = _banded_networks()[name]
    weights = random_weights(network, seed=band_rows)
    rng = np.random.default_rng(band_rows + network.scale)
    for precision in _precisions():
        whole = engine(weights, tail_band_rows=0, precision=precision)
        banded = engine(weights, tail_band_rows=band_rows, precision=precision)
        banded_maps = [m for m in banded.plan["maps"] if m["band_rows"] > 0]
        assert banded_maps and all(m["level"] > 1 for m in banded_maps)
        for n, h, w in [(1, 37, 29), (2, 61, 50), (1, 131, 9)]:
            tiles = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
            assert np.array_equal(banded.run(tiles), whole.run(tiles)), (precision, n, h, w)
            floats = (tiles / 255).astype(np.float32)
            assert np.array_equal(banded.run(floats), whole.run(floats)), (precision, n, h, w)
        assert banded.workspace_bytes(1, 512, 512) < 0.75 * whole.workspace_bytes(1, 512, 512)
    for wrong in (10, -12):
        with pytest.raises(ValueError, match=f"tail_band_rows: expected a multiple of 12, 0 \\(whole maps\\) or -1 "
                                             f"\\(the engine's choice\\), got {wrong}$"):
            engine(weights, tail_band_rows=wrong)


@pytest.mark.parametrize("seed", range(4))
def test_random_geometry_fast_paths_equal_reference_path(seed):
    """Fresh weights and sizes each time: every fast path against the double-precision reference path."""
    rng = np.random.default_rng(100 + seed)
    channels = int(rng.choice([4, 8, 16, 20]))
    weights = random_generator_weights(num_blocks=1, channels=channels, seed=200 + seed)
    n, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 14)), int(rng.integers(1, 14))
    tiles = rng.random((n, h, w, 3), dtype=np.float32)
    reference = engine(weights, path="reference").run(tiles).astype(np.float64)
    for path in _C().cpu_info()["paths_fp32"][1:]:
        assert relative_error(engine(weights, path=path).run(tiles), reference) <= 1e-5, (path, n, h, w, channels)


def test_unavailable_reason_reports_the_build_status(monkeypatch, tmp_path):
    """Without the extension the backend says why, quoting setup.py's status file when there is one."""
    from srgan_fast.backends import native_backend

    def missing():
        raise ImportError("No module named 'srgan_fast._C'")

    monkeypatch.setattr(native_backend, "_native_module", missing)
    monkeypatch.setattr(native_backend, "_BUILD_STATUS", tmp_path / "status.txt")
    native_backend._probe.cache_clear()
    try:
        assert "not built or does not load (No module named 'srgan_fast._C')" in \
            native_backend.NativeBackend.unavailable_reason()
        (tmp_path / "status.txt").write_text("native build failed (cmake exited 1)\n")
        native_backend._probe.cache_clear()
        assert native_backend.NativeBackend.unavailable_reason() == \
            "srgan_fast._C is not built: native build failed (cmake exited 1)"
        assert native_backend.build_info() is None
        assert native_backend.NativeBackend.supported_precisions("cpu") == ()
    finally:
        native_backend._probe.cache_clear()


def test_a_profiled_run_is_the_same_run_timed_step_by_step():
    """run_profiled (benchmarks/layer_profile.py) gives run's bits and one time per step: every layer once, in
    order, but the upsamplers, which run banded inside the tail's step."""
    weights = random_generator_weights(num_blocks=2, channels=16, seed=4)
    tiles = np.random.default_rng(5).integers(0, 256, (2, 11, 13, 3), dtype=np.uint8)
    run = engine(weights)
    out, steps = run.run_profiled(tiles)
    assert np.array_equal(out, run.run(tiles))
    layers = [layer for layer, _ in steps]
    count = len(weights.network.layers)
    assert layers == list(range(count - 3)) + [count - 1]  # the two upsamplers report with the tail
    assert all(seconds >= 0 for _, seconds in steps)
