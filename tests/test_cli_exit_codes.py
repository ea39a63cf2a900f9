"""One exit status for one kind of refusal in every command (README: 2 for a usage error): ``--device cuda`` on
a machine without a GPU is one, whether the command upscales images, a video, or profiles the CUDA engine."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from srgan_fast.api import gpu_present
from srgan_fast.cli.main import main

pytestmark = pytest.mark.skipif(gpu_present(), reason="this machine has a GPU: --device cuda works here")


def _image(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return str(path)


def _video(tmp_path):
    pytest.importorskip("av")
    from srgan_fast.video.synthetic import write_test_video

    return write_test_video(tmp_path / "in.mkv", width=16, height=12, pts=[0, 40]).path


@pytest.mark.parametrize("command", ["upscale", "video", "cuda-profile"])
def test_device_cuda_without_a_gpu_is_a_usage_error(command, tmp_path, tiny_model_path, capsys):
    model = ["--model", tiny_model_path]
    argv = {"upscale": lambda: ["upscale", _image(tmp_path), "-o", str(tmp_path / "out.png"), *model],
            "video": lambda: ["video", _video(tmp_path), "-o", str(tmp_path / "out.mkv"), *model],
            "cuda-profile": lambda: ["cuda-profile"]}[command]()
    capsys.readouterr()
    assert main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not list(tmp_path.glob("out.*"))
