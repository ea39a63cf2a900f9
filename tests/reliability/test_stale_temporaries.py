"""A run killed mid-write (kill -9: no ``finally`` runs) leaves its hidden temporary file; the next image batch or
video run into that folder removes it, and nothing else: not a live run's file, not anyone else's hidden file."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srgan_fast.cli.main import main
from srgan_fast.io.atomic import remove_stale_temporaries

KILLED_WHILE_WRITING = """
import os, signal, sys
from srgan_fast.io.atomic import atomic_output
with atomic_output(sys.argv[1], suffix=".png") as tmp:
    print(tmp, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                             check=True)
    return int(process.stdout)


def make(folder: Path, name: str, age_s: float = 3600) -> Path:
    path = folder / name
    path.write_bytes(b"")
    past = time.time() - age_s
    os.utime(path, (past, past))
    return path


def test_only_stale_temporaries_of_this_tool_are_removed(tmp_path):
    gone, alive, mine = dead_pid(), os.getppid(), os.getpid()
    stale = [make(tmp_path, f".a.png.srgan-fast-{gone}.k3j_9x0q.png"),
             make(tmp_path, f".clip.mkv.srgan-fast-{gone}.0a1b2c3d.partial"),
             make(tmp_path, f".model.safetensors.srgan-fast-{gone}.ab_cdefg.tmp")]
    kept = [make(tmp_path, f".a.png.srgan-fast-{alive}.k3j_9x0q.png"),  # a live run's file in flight
            make(tmp_path, f".b.png.srgan-fast-{mine}.k3j_9x0q.png"),  # this process's own
            make(tmp_path, f".c.png.srgan-fast-{gone}.k3j_9x0q.png", age_s=-60),  # written after the run began
            make(tmp_path, f".d.png.srgan-fast-{gone}.k3j_9x0q.jpg"),  # a suffix this tool would not give it
            make(tmp_path, f".e.png.srgan-fast-{gone}.short.png"),
            make(tmp_path, ".f.png.k3j_9x0q.png"),  # no mark: someone else's hidden file
            make(tmp_path, ".notes.txt"), make(tmp_path, "a.png")]
    (tmp_path / f".g.png.srgan-fast-{gone}.k3j_9x0q.png").mkdir()  # a folder is never removed
    (tmp_path / "sub").mkdir()
    kept.append(make(tmp_path / "sub", f".h.png.srgan-fast-{gone}.k3j_9x0q.png"))  # not in the folder given
    removed = remove_stale_temporaries([tmp_path, tmp_path, tmp_path / "missing"], time.time())
    assert sorted(removed) == sorted(stale)
    assert all(not path.exists() for path in stale) and all(path.exists() for path in kept)


def killed_writer_leftover(target: Path) -> Path:
    process = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(target)], capture_output=True,
                             text=True)
    assert process.returncode == -9
    leftover = Path(process.stdout.strip())
    assert leftover.exists() and leftover.parent == target.parent and leftover.name.startswith(f".{target.name}.")
    past = time.time() - 5
    os.utime(leftover, (past, past))
    return leftover


def test_the_next_image_batch_removes_what_a_killed_run_left(tmp_path, small_weights, capsys):
    from srgan_fast.weights import save_weights

    weights = tmp_path / "tiny.safetensors"
    save_weights(weights, small_weights.tensors, small_weights.metadata)
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "in" / "x.png")
    (tmp_path / "out").mkdir()
    leftover = killed_writer_leftover(tmp_path / "out" / "x.png")
    code = main(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(weights),
                 "--backend", "torch", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0 and not leftover.exists()
    assert f"note: removed {leftover}, the temporary file of an earlier run that was killed" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png"]


def test_the_next_video_run_removes_a_killed_run_s_partial_file(tmp_path, caplog):
    pytest.importorskip("av")
    from srgan_fast.video import upscale_video
    from srgan_fast.video.pipeline import _temporary_path
    from srgan_fast.video.synthetic import NearestUpscaler, write_test_video

    src = write_test_video(tmp_path / "in.mkv")
    (tmp_path / "out").mkdir()
    dst = tmp_path / "out" / "big.mkv"
    partial = _temporary_path(dst)
    assert partial.name.startswith(f".big.mkv.srgan-fast-{os.getpid()}.") and partial.suffix == ".partial"
    stale = partial.with_name(partial.name.replace(f"-{os.getpid()}.", f"-{dead_pid()}."))
    make(stale.parent, stale.name)
    upscale_video(src.path, dst, upscaler=NearestUpscaler(), progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["big.mkv"]
    assert f"removed {stale}, the temporary file of an earlier run that was killed" in caplog.text
