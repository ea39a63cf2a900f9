"""Other projects' weight files: .pth through torch's weights-only loader (a pickle payload never runs),
foreign .safetensors and our training checkpoints detected, and ``srgan-fast convert`` to our format."""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_detect import BasicSRMSRResNet, LornatangSRResNet, SRVGGNetCompact, numpy_state, randomised  # noqa: E402

from srgan_fast import Upscaler  # noqa: E402
from srgan_fast.cli.convert import register
from srgan_fast.weights.convert import convert  # noqa: E402
from srgan_fast.weights import FORMAT, WeightsError, load_weights  # noqa: E402


def save_pth(path, module, wrapper=None):
    state = module.state_dict()
    torch.save(state if wrapper is None else {wrapper: state, "iter": 1000}, path)
    return path


def reference_output(module, image: np.ndarray) -> np.ndarray:
    """The original module's output on an H×W×3 float image in [0, 1], clamped, H'×W'×3 float64."""
    with torch.no_grad():
        y = module.double()(torch.from_numpy(image.astype(np.float64)).permute(2, 0, 1)[None])
    return y.clamp(0.0, 1.0)[0].permute(1, 2, 0).numpy()


@pytest.mark.native
@pytest.mark.parametrize("module, wrapper", [
    (lambda: LornatangSRResNet(8, 1, 4), "state_dict"),
    (lambda: SRVGGNetCompact(16, 2, 4, "prelu"), "params"),
], ids=["lornatang", "srvgg"])
def test_pth_runs_on_the_native_engine_like_the_original(tmp_path, module, wrapper):
    original = randomised(module(), seed=11)
    path = save_pth(tmp_path / "theirs.pth", original, wrapper)
    image = np.random.default_rng(12).random((13, 10, 3), dtype=np.float32)
    out = Upscaler(str(path), backend="native", device="cpu", precision="fp32").upscale(image)
    expected = reference_output(original, image)
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() / np.abs(expected).max() <= 1e-5


def test_detected_weights_say_what_and_where_from(tmp_path):
    path = save_pth(tmp_path / "realesr-tiny.pth", SRVGGNetCompact(8, 2, 2, "prelu"), "params")
    weights = load_weights(path)
    assert weights.name == "realesr-tiny"
    assert {k: weights.metadata[k] for k in ("architecture", "detected_from", "source_file")} == {
        "architecture": "srvgg_compact", "detected_from": "Real-ESRGAN SRVGGNetCompact (params)",
        "source_file": "realesr-tiny.pth"}
    assert weights.describe() == ("srvgg_compact(num_convs=2, channels=8, scale=2, activation=prelu), "
                                  "from Real-ESRGAN SRVGGNetCompact (params)")
    relu = load_weights(save_pth(tmp_path / "relu.pt", SRVGGNetCompact(8, 1, 2, "relu")), activation="relu")
    assert relu.network.params["activation"] == "relu"
    half = SRVGGNetCompact(8, 1, 2, "prelu").to(torch.bfloat16)
    bf16 = load_weights(save_pth(tmp_path / "bf16.pth", half))
    assert np.array_equal(bf16.tensors["body.0.weight"], half.body[0].weight.detach().float().numpy())


class Payload:
    """Runs its command the moment it is unpickled by anything that honours __reduce__."""

    def __init__(self, how: str, marker):
        self.how, self.marker = how, str(marker)

    def __reduce__(self):
        if self.how == "os.system":
            return os.system, (f"touch {self.marker}",)
        return exec, (f"open({self.marker!r}, 'w').close()",)


@pytest.mark.parametrize("how", ["os.system", "exec"])
def test_malicious_pickle_is_refused_without_running(tmp_path, how):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pth"
    torch.save({"params": BasicSRMSRResNet(8, 1, 4).state_dict(), "hook": Payload(how, marker)}, path)
    with pytest.raises(WeightsError, match=r"evil\.pth: refused to unpickle it \(it references (posix\.system|"
                       r"exec)\): only tensors and plain containers load, never pickled objects or code$"):
        load_weights(path)
    assert not marker.exists()
    with pytest.raises(WeightsError, match="refused to unpickle"):
        Upscaler(str(path), backend="native", device="cpu")
    assert not marker.exists()
    # The payload is live: an unrestricted unpickler runs it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_unreadable_and_torchless_pth(tmp_path, monkeypatch):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a torch file")
    with pytest.raises(WeightsError, match=r"garbage\.pth: (refused to unpickle|unreadable torch checkpoint)"):
        load_weights(garbage)
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match=r"empty\.ckpt: unreadable torch checkpoint \(EOFError\)$"):
        load_weights(empty)
    with pytest.raises(WeightsError, match=r"weights file not found: .*absent\.pth$"):
        load_weights(tmp_path / "absent.pth")
    path = save_pth(tmp_path / "ok.pth", BasicSRMSRResNet(8, 1, 4))
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(WeightsError, match=r"ok\.pth: \.pth files need PyTorch to read; convert once where torch "
                       r"is installed \(srgan-fast convert .*ok\.pth .*ok\.safetensors\)"):
        load_weights(path)


def test_foreign_safetensors_and_our_training_checkpoint_are_detected(tmp_path):
    from safetensors.numpy import save_file

    from srgan_fast.architecture import srresnet
    from srgan_fast.reference.module import build_module

    save_file(numpy_state(BasicSRMSRResNet(8, 1, 3)), str(tmp_path / "msr.safetensors"), metadata={"format": "pt"})
    assert load_weights(tmp_path / "msr.safetensors").describe() == ("msrresnet(num_blocks=1, channels=8, scale=3), "
                                                                     "from BasicSR MSRResNet")
    generator = randomised(build_module(srresnet(1, 8), batch_norm=True), seed=13)
    checkpoint = {f"module/generator/{k}": v for k, v in numpy_state(generator).items()}
    checkpoint["module/discriminator/features.0.weight"] = np.zeros((4, 3, 3, 3), np.float32)
    checkpoint["optim/generator/0/exp_avg"] = np.zeros(3, np.float32)
    save_file(checkpoint, str(tmp_path / "step_100.safetensors"), metadata={"step": "100", "config": "{}"})
    detected = load_weights(tmp_path / "step_100.safetensors")
    assert detected.metadata["detected_from"] == ("srgan_fast srresnet, BatchNorm folded "
                                                  "(srgan_fast training checkpoint)")


def test_convert_round_trip_reads_back_without_torch(tmp_path, monkeypatch):
    source = save_pth(tmp_path / "msrresnet_x4.pth", randomised(BasicSRMSRResNet(8, 1, 4), seed=14), "params_ema")
    detected = load_weights(source)
    written = convert(source, tmp_path / "out.safetensors")
    assert written == tmp_path / "out.safetensors"
    monkeypatch.setitem(sys.modules, "torch", None)
    loaded = load_weights(written)
    assert loaded.metadata["format"] == FORMAT
    assert loaded.network == detected.network and loaded.sha256 == detected.sha256
    assert all(np.array_equal(loaded.tensors[k], v) for k, v in detected.tensors.items())
    assert {k: loaded.metadata[k] for k in ("name", "architecture", "architecture_params", "detected_from",
                                            "source_file")} == {
        "name": "msrresnet_x4", "architecture": "msrresnet",
        "architecture_params": '{"num_blocks": 1, "channels": 8, "scale": 4}',
        "detected_from": "BasicSR MSRResNet (params_ema)", "source_file": "msrresnet_x4.pth"}


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="srgan-fast")
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_convert_command_refuses_to_overwrite(tmp_path, capsys):
    source = save_pth(tmp_path / "compact.pth", SRVGGNetCompact(8, 1, 4, "prelu"), "params")
    out = tmp_path / "compact.safetensors"
    assert run_cli(["convert", str(source), str(out)]) == 0
    assert capsys.readouterr().out == (f"wrote {out}: srvgg_compact(num_convs=1, channels=8, scale=4, "
                                       "activation=prelu), from Real-ESRGAN SRVGGNetCompact (params)\n")
    before = out.read_bytes()
    assert run_cli(["convert", str(source), str(out)]) == 2
    assert capsys.readouterr().err == f"error: {out}: exists (pass --overwrite to replace it)\n"
    assert out.read_bytes() == before
    with pytest.raises(WeightsError, match=r"exists \(pass --overwrite"):
        convert(source, out)
    assert run_cli(["convert", str(source), str(out), "--overwrite"]) == 0
    capsys.readouterr()
    assert run_cli(["convert", str(source), str(tmp_path / "out.pth")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'out.pth'}: the output must be a .safetensors file, "
                                       "got suffix '.pth'\n")
    relu = save_pth(tmp_path / "relu.pth", SRVGGNetCompact(8, 1, 2, "relu"))
    assert run_cli(["convert", str(relu), str(tmp_path / "relu.safetensors")]) == 2
    assert "pass activation='relu' or 'leakyrelu' (--activation)" in capsys.readouterr().err
    assert run_cli(["convert", str(relu), str(tmp_path / "relu.safetensors"), "--activation", "relu"]) == 0
    assert load_weights(tmp_path / "relu.safetensors").network.params["activation"] == "relu"
