"""The TensorRT engine cache and build options, without TensorRT: keys, framing, corruption, unwritable dirs."""
from __future__ import annotations

import dataclasses
import warnings

import pytest

from srgan_fast.backends.tensorrt.cache import (CacheWarning, EngineCache, cache_key, default_cache_dir, frame, unframe)
from srgan_fast.backends.tensorrt.options import BuildOptions, DeviceInfo, check_device_supports, engine_fields

DEVICE = DeviceInfo("NVIDIA H100 80GB HBM3", (9, 0))
FIELDS = {"weights_sha256": "ab" * 32, "precision": "fp16"}


def key_for(weights_sha="ab" * 32, options=BuildOptions(), device=DEVICE, version="10.13.0", calibration=None):
    return cache_key(engine_fields(weights_sha, options, device, version, calibration))


def test_key_changes_with_every_input_that_invalidates_an_engine():
    base = BuildOptions(precision="fp16", tile=(128, 128), batch=8, io="uint8")
    variants = {
        "base": key_for(options=base),
        "tensorrt version": key_for(options=base, version="10.14.1"),
        "gpu name": key_for(options=base, device=DeviceInfo("NVIDIA H200", (9, 0))),
        "compute capability": key_for(options=base, device=DeviceInfo(DEVICE.name, (8, 9))),
        "weights": key_for(options=base, weights_sha="cd" * 32),
        "calibration table": key_for(options=base, calibration="ef" * 32),
        "precision": key_for(options=dataclasses.replace(base, precision="bf16")),
        "tile height": key_for(options=dataclasses.replace(base, tile=(96, 128))),
        "tile width": key_for(options=dataclasses.replace(base, tile=(128, 96))),
        "batch": key_for(options=dataclasses.replace(base, batch=4)),
        "io": key_for(options=dataclasses.replace(base, io="float")),
        "dynamic profile": key_for(options=dataclasses.replace(base, dynamic=((64, 64), (256, 256)))),
        "other profile": key_for(options=dataclasses.replace(base, dynamic=((64, 64), (256, 512)))),
        "optimization level": key_for(options=dataclasses.replace(base, optimization_level=5)),
        "workspace": key_for(options=dataclasses.replace(base, workspace_mib=1024)),
    }
    assert len(set(variants.values())) == len(variants)
    assert key_for(options=BuildOptions(precision="fp16", tile=(128, 128), batch=8, io="uint8")) == variants["base"]


def test_engine_round_trips_through_the_cache(tmp_path):
    cache = EngineCache(tmp_path)
    assert cache.load("k" * 64) is None
    path = cache.store("k" * 64, FIELDS, b"\x00plan bytes\xff" * 100)
    assert path.parent == tmp_path and cache.load("k" * 64) == b"\x00plan bytes\xff" * 100
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left behind


def _corrupt(data: bytes, how: str, key: str) -> bytes:
    if how == "garbage":
        return b"this is not an engine" * 10
    if how == "truncated":
        return data[:-7]
    if how == "flipped byte":
        return data[:-3] + bytes([data[-3] ^ 0x40]) + data[-2:]
    if how == "other key":
        return frame("o" * 64, FIELDS, b"plan" * 50)
    if how == "future version":
        return data[:8] + (99).to_bytes(4, "little") + data[12:]
    if how == "empty":
        return b""
    raise AssertionError(how)


@pytest.mark.parametrize("how, reason", [
    ("garbage", "not an srgan_fast engine file"),
    ("truncated", "truncated engine (193 bytes, header says 200)"),
    ("flipped byte", "engine checksum mismatch"),
    ("other key", "built for another configuration"),
    ("future version", "frame version 99, this srgan_fast reads version 1"),
    ("empty", "truncated (0 bytes"),
])
def test_corrupted_cache_file_is_reported_removed_and_treated_as_missing(tmp_path, how, reason):
    cache = EngineCache(tmp_path)
    key = "k" * 64
    path = cache.store(key, FIELDS, b"plan" * 50)
    path.write_bytes(_corrupt(path.read_bytes(), how, key))
    with pytest.warns(CacheWarning) as record:
        assert cache.load(key) is None
    message = str(record[0].message)
    assert str(path) in message and reason in message and "rebuilding" in message
    assert not path.exists()


def test_unframe_accepts_only_its_own_key():
    data = frame("a" * 64, FIELDS, b"xyz")
    assert unframe(data, "a" * 64) == b"xyz"
    with pytest.raises(ValueError, match="built for another configuration"):
        unframe(data, "b" * 64)


def test_unwritable_cache_dir_falls_back_to_a_temporary_dir_with_a_clear_message(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    wanted = blocker / "engines"  # cannot be created, whoever runs the test (root ignores permission bits)
    with pytest.warns(CacheWarning, match="is not writable") as record:
        cache = EngineCache(wanted)
    assert str(wanted) in str(record[0].message) and "SRGAN_FAST_CACHE_DIR" in str(record[0].message)
    assert cache.directory != wanted and cache.directory.is_dir()
    cache.store("k" * 64, FIELDS, b"plan")
    assert cache.load("k" * 64) == b"plan"


def test_writable_dir_gives_no_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert EngineCache(tmp_path / "new" / "dir").directory == tmp_path / "new" / "dir"


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("SRGAN_FAST_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "srgan_fast" / "tensorrt"
    monkeypatch.setenv("SRGAN_FAST_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine" / "tensorrt"


def test_static_and_dynamic_profiles():
    static = BuildOptions(tile=(96, 128), batch=4, io="uint8")
    assert static.profile_shapes() == ((4, 96, 128, 3),) * 3
    dynamic = BuildOptions(tile=(96, 128), batch=4, io="float", dynamic=((32, 32), (256, 256)))
    assert dynamic.profile_shapes() == ((1, 3, 32, 32), (4, 3, 96, 128), (4, 3, 256, 256))
    assert dynamic.graph_kwargs()["tile"] is None and static.graph_kwargs()["tile"] == (96, 128)


@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "int4"}, "unknown TensorRT precision 'int4': expected one of fp32, fp16, bf16, int8, fp8"),
    ({"tile": (0, 64)}, "tile must be (height, width) of positive ints, got (0, 64)"),
    ({"batch": 0}, "batch must be >= 1, got 0"),
    ({"io": "rgb"}, "io must be one of float, uint8, got 'rgb'"),
    ({"optimization_level": 6}, "optimization_level must be in 0..5, got 6"),
    ({"workspace_mib": 0}, "workspace_mib must be >= 1 or None, got 0"),
    ({"tile": (64, 64), "dynamic": ((80, 16), (128, 128))}, "must contain the tile (64, 64)"),
])
def test_bad_build_options_are_named(kwargs, message):
    with pytest.raises(ValueError) as info:
        BuildOptions(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("precision, device, message", [
    ("fp8", DeviceInfo("NVIDIA A100", (8, 0)), "fp8 needs a GPU of compute capability >= 8.9; NVIDIA A100 has 8.0"),
    ("bf16", DeviceInfo("Tesla T4", (7, 5)), "bf16 needs a GPU of compute capability >= 8.0; Tesla T4 has 7.5"),
])
def test_precision_the_gpu_lacks_is_refused(precision, device, message):
    with pytest.raises(ValueError) as info:
        check_device_supports(precision, device)
    assert str(info.value) == message
    check_device_supports(precision, DEVICE)  # an H100 has both
