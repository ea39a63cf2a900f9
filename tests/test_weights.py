"""Weights files: safetensors only, integrity checked, clear errors for anything else."""
import json
import re

import numpy as np
import pytest

from conftest import random_generator_weights
from srgan_fast.weights import load as weights_module
from srgan_fast.architecture import srresnet
from srgan_fast.weights import WeightsError, available_models, load_weights, save_weights


def test_save_then_load_round_trips(tmp_path):
    original = random_generator_weights(2, 8)
    path = tmp_path / "w.safetensors"
    save_weights(path, original.tensors, original.metadata | {"name": "mine"})
    loaded = load_weights(path)
    assert loaded.name == "mine" and loaded.network == srresnet(2, 8)
    assert all(np.array_equal(loaded.tensors[k], v) for k, v in original.tensors.items())
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left no temporary file


def test_flipped_byte_is_detected_as_corruption(tmp_path):
    w = random_generator_weights(1, 4)
    path = tmp_path / "w.safetensors"
    save_weights(path, w.tensors, w.metadata)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"w.safetensors: corrupted weights \(tensors sha256"):
        load_weights(path)


def test_truncated_missing_and_foreign_files(tmp_path):
    w = random_generator_weights(1, 4)
    path = tmp_path / "w.safetensors"
    save_weights(path, w.tensors, w.metadata)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(WeightsError, match="unreadable safetensors file"):
        load_weights(path)
    with pytest.raises(WeightsError, match="weights file not found"):
        load_weights(tmp_path / "absent.safetensors")
    with pytest.raises(WeightsError, match="unknown model 'nonesuch': expected one of"):
        load_weights("nonesuch")
    (tmp_path / "x.safetensors").mkdir()  # a folder with a weights file's name: named as a folder
    for given in (tmp_path / "x.safetensors", tmp_path):
        with pytest.raises(WeightsError, match=rf"^weights path {re.escape(str(given))} is a directory: expected a "
                                               r"\.safetensors, \.pth, \.pt or \.ckpt file$"):
            load_weights(given)
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(3, np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match="not an srgan_fast generator file"):
        load_weights(tmp_path / "other.safetensors")


def test_shape_mismatch_names_the_tensor(tmp_path):
    w = random_generator_weights(1, 4)
    tensors = dict(w.tensors)
    tensors["tail.bias"] = np.zeros(4, np.float32)
    with pytest.raises(WeightsError, match=r"wrong shape \['tail.bias'\]"):
        save_weights(tmp_path / "bad.safetensors", tensors, w.metadata)


def test_manifest_sha256_guards_shipped_files(tmp_path, monkeypatch):
    w = random_generator_weights(1, 4)
    save_weights(tmp_path / "tiny.safetensors", w.tensors, w.metadata)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"models": {"tiny": {"file": "tiny.safetensors", "sha256": "0" * 64, "description": "test"}}}))
    monkeypatch.setattr(weights_module, "_pretrained_dir", lambda: tmp_path)
    with pytest.raises(WeightsError, match="file sha256 does not match the package manifest"):
        load_weights("tiny")


def test_shipped_models_load_and_say_what_they_are():
    models = available_models()
    assert {"srresnet", "srgan"} <= set(models), f"shipped models: {sorted(models)}"
    for name in models:
        w = load_weights(name)
        assert w.network == srresnet(16, 64)
        assert {"training_steps", "training_data", "eval_psnr_y", "eval_bicubic_psnr_y"} <= set(w.metadata)
        assert w.metadata["name"] == name


def test_atomic_outputs_get_ordinary_file_permissions(tmp_path):
    import os

    from srgan_fast.io.atomic import write_bytes_atomically

    old = os.umask(0o022)
    try:
        write_bytes_atomically(tmp_path / "new.bin", b"x")
        assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o644
        (tmp_path / "kept.bin").write_bytes(b"old")
        (tmp_path / "kept.bin").chmod(0o640)
        write_bytes_atomically(tmp_path / "kept.bin", b"new")
        assert (tmp_path / "kept.bin").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
