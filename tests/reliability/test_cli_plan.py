"""``srgan-fast upscale`` never loses a result and resumes: every output is planned before any work (two inputs
for one output refuse the run, several folders keep their names, a file given twice runs once), an output is
never replaced without --overwrite, not even one that appears mid-run, and --skip-existing finishes a stopped
batch with an "N written, M skipped, K failed" summary. Inputs are generated; the model is a tiny random one.
"""
from __future__ import annotations

import errno
import os
import re
import sys

import numpy as np
import pytest
from conftest import noise_image as noise
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from srgan_fast.api import Upscaler
from srgan_fast.cli.main import main
from srgan_fast.io import atomic
from srgan_fast.io.images import read_image
from srgan_fast.io.save import write_image

pytestmark = pytest.mark.native


@pytest.fixture(scope="module")
def options(tiny_model_path):
    return ["--model", tiny_model_path, "--backend", "native", "--device", "cpu"]


def lines(err, kind):
    return [line for line in err.splitlines() if line.startswith(f"{kind}:")]


def summary(err):
    return [line for line in err.splitlines() if re.match(r"srgan-fast: \d+ written, ", line)]


def visible_files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def hidden_files(folder):
    return [p for p in folder.rglob(".*")]


def count_upscales(monkeypatch):
    calls = []
    real = Upscaler.upscale

    def upscale(self, image, **kwargs):
        calls.append(image.shape)
        return real(self, image, **kwargs)

    monkeypatch.setattr(Upscaler, "upscale", upscale)
    return calls


def test_two_inputs_for_one_output_refuse_the_run_on_one_line(tmp_path, options, capsys, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_image(src / "a.png", noise(6, 6))
    Image.fromarray(noise(6, 6, seed=1)).save(src / "a.jpg")
    calls = count_upscales(monkeypatch)
    code = main(["upscale", str(src), "-o", str(out), "--format", "png", "--overwrite", *options])
    err = capsys.readouterr().err
    assert code == 2 and calls == []
    assert err == (f"error: {src / 'a.jpg'} and {src / 'a.png'} would both be written to {out / 'a.png'}; keep them "
                   "apart with --name '{stem}_{ext}' or upscale them in separate runs\n")
    assert not out.exists()
    # The way the line gives keeps both results.
    assert main(["upscale", str(src), "-o", str(out), "--format", "png", "--name", "{stem}_{ext}", *options]) == 0
    assert visible_files(out) == ["a_jpg.png", "a_png.png"]


def test_several_folders_keep_their_names_and_same_names_collide(tmp_path, options, capsys):
    for folder in ("day", "night"):
        (tmp_path / folder / "sub").mkdir(parents=True)
        write_image(tmp_path / folder / "sub" / "a.png", noise(5, 5))
    out = tmp_path / "out"
    assert main(["upscale", str(tmp_path / "day"), str(tmp_path / "night"), "-o", str(out), *options]) == 0
    assert visible_files(out) == ["day/sub/a.png", "night/sub/a.png"]
    # Two folders of one name would meet under it: refused before any work, naming both files.
    (tmp_path / "y" / "day" / "sub").mkdir(parents=True)
    capsys.readouterr()
    write_image(tmp_path / "y" / "day" / "sub" / "a.png", noise(5, 5))
    code = main(["upscale", str(tmp_path / "day"), str(tmp_path / "y" / "day"), "-o", str(tmp_path / "out2"),
                 *options])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err == (f"error: {tmp_path / 'day' / 'sub' / 'a.png'} and {tmp_path / 'y' / 'day' / 'sub' / 'a.png'} would "
                   f"both be written to {tmp_path / 'out2' / 'day' / 'sub' / 'a.png'}; they have the same name, which "
                   "--name cannot change: upscale them in separate runs\n")


def test_a_file_given_twice_is_upscaled_once(tmp_path, options, capsys, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", noise(5, 5))
    write_image(src / "b.png", noise(6, 6))
    monkeypatch.chdir(tmp_path)
    calls = count_upscales(monkeypatch)
    code = main(["upscale", "in", str(src / "a.png"), "in/../in/a.png", "-o", "out", *options])
    err = capsys.readouterr().err
    assert code == 0 and len(calls) == 2
    assert lines(err, "note") == [f"note: {src / 'a.png'}: given more than once (also as in/a.png); upscaled once",
                                  "note: in/../in/a.png: given more than once (also as in/a.png); upscaled once"]
    assert visible_files(tmp_path / "out") == ["a.png", "b.png"]
    assert summary(err)[0].startswith("srgan-fast: 2 written, 0 skipped, 0 failed in ")


def test_skip_existing_finishes_a_stopped_batch(tmp_path, options, capsys, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for index in range(3):
        write_image(src / f"{index}.png", noise(5, 5, seed=index))
    assert main(["upscale", str(src), "-o", str(out), *options]) == 0
    kept = {name: (out / name).read_bytes() for name in ("0.png", "2.png")}
    (out / "1.png").unlink()  # as if the run had been stopped before it
    (out / "0.png").write_bytes(b"an earlier run's result")
    capsys.readouterr()
    calls = count_upscales(monkeypatch)

    assert main(["upscale", str(src), "-o", str(out), "--skip-existing", *options]) == 0
    err = capsys.readouterr().err
    assert len(calls) == 1 and lines(err, "error") == []
    assert summary(err)[0].startswith("srgan-fast: 1 written, 2 skipped, 0 failed in ")
    assert (out / "0.png").read_bytes() == b"an earlier run's result" and (out / "2.png").read_bytes() == kept["2.png"]
    assert read_image(out / "1.png").shape == (20, 20, 3)

    # Without it, each existing output is one line, before any model is loaded, and the run says it failed.
    assert main(["upscale", str(src), "-o", str(out), *options]) == 1
    err = capsys.readouterr().err
    assert len(calls) == 1 and "srgan-fast: model" not in err
    assert lines(err, "error") == [f"error: {out / name}: exists (pass --overwrite to replace it or --skip-existing "
                                   "to keep it)" for name in ("0.png", "1.png", "2.png")]
    assert summary(err)[0].startswith("srgan-fast: 0 written, 0 skipped, 3 failed in ")


def test_an_output_that_appears_mid_run_is_kept(tmp_path, options, capsys, monkeypatch):
    """The destination is checked at planning and again, atomically, when the result is put in place."""
    write_image(tmp_path / "a.png", noise(5, 5))
    write_image(tmp_path / "b.png", noise(6, 6))
    out = tmp_path / "out"
    real = Upscaler.upscale

    def upscale_while_someone_writes(self, image, **kwargs):
        if image.shape[0] == 5:
            out.mkdir(exist_ok=True)
            (out / "a.png").write_bytes(b"written by someone else meanwhile")
        return real(self, image, **kwargs)

    monkeypatch.setattr(Upscaler, "upscale", upscale_while_someone_writes)
    code = main(["upscale", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(out), *options])
    err = capsys.readouterr().err
    assert code == 1
    assert lines(err, "error") == [f"error: {out / 'a.png'}: exists (made by something else while this run worked on "
                                   "it; kept, pass --overwrite to replace it)"]
    assert (out / "a.png").read_bytes() == b"written by someone else meanwhile"
    assert read_image(out / "b.png").shape == (24, 24, 3)
    assert summary(err)[0].startswith("srgan-fast: 1 written, 0 skipped, 1 failed in ")
    assert hidden_files(out) == []
    # With --skip-existing it counts as done, as it would have at planning (another run of the batch wrote it).
    (out / "a.png").unlink()
    (out / "b.png").unlink()
    assert main(["upscale", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(out), "--skip-existing",
                 *options]) == 0
    err = capsys.readouterr().err
    assert lines(err, "note") == [f"note: {out / 'a.png'}: written by something else meanwhile; kept "
                                  "(--skip-existing)"]
    assert summary(err)[0].startswith("srgan-fast: 1 written, 1 skipped, 0 failed in ")
    assert (out / "a.png").read_bytes() == b"written by someone else meanwhile"
    # --overwrite replaces it.
    assert main(["upscale", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(out), "--overwrite",
                 *options]) == 0
    assert read_image(out / "a.png").shape == (20, 20, 3)


def test_no_replace_writes_refuse_an_existing_file_and_leave_no_temporary(tmp_path):
    target = tmp_path / "x.bin"
    with atomic.atomic_output(target, replace=False) as tmp:
        tmp.write_bytes(b"first")
    assert target.read_bytes() == b"first" and oct(target.stat().st_mode & 0o777) != "0o600"
    with pytest.raises(FileExistsError):
        with atomic.atomic_output(target, replace=False) as tmp:
            tmp.write_bytes(b"second")
    assert target.read_bytes() == b"first" and hidden_files(tmp_path) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_without_hard_links_the_no_replace_rename_does_the_same(tmp_path, monkeypatch):
    def no_links(source, destination):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "x.bin"
    with atomic.atomic_output(target, replace=False) as tmp:
        tmp.write_bytes(b"first")
    with pytest.raises(FileExistsError):
        with atomic.atomic_output(target, replace=False) as tmp:
            tmp.write_bytes(b"second")
    assert target.read_bytes() == b"first" and hidden_files(tmp_path) == []


def test_a_folder_that_cannot_be_written_is_named_not_the_temporary_file(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        with atomic.atomic_output(tmp_path / "missing" / "x.png"):
            pass
    assert str(error.value) == f"[Errno 2] No such file or directory: '{tmp_path / 'missing' / 'x.png'}'"


def test_an_output_under_a_file_is_one_usage_line(tmp_path, options, capsys):
    write_image(tmp_path / "a.png", noise(5, 5))
    (tmp_path / "plain").write_text("not a folder")
    code = main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "plain" / "out"), *options])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: -o {tmp_path / 'plain' / 'out'}: cannot create the folder {tmp_path / 'plain' / 'out'}"
                          " (")
    assert ".a.png" not in err


def test_a_missing_input_is_named_even_where_its_output_exists(tmp_path, options, capsys):
    (tmp_path / "out.png").write_bytes(b"precious")
    code = main(["upscale", str(tmp_path / "nope.png"), "-o", str(tmp_path / "out.png"), *options])
    err = capsys.readouterr().err
    assert code == 1 and lines(err, "error") == [f"error: {tmp_path / 'nope.png'}: no such file or folder"]
    assert (tmp_path / "out.png").read_bytes() == b"precious"


def test_files_that_are_not_images_are_a_note_and_lines_say_time_and_rate(tmp_path, options, capsys):
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", noise(5, 5))
    (src / "notes.txt").write_text("a caption")
    (src / "README").write_text("no extension")
    (src / ".hidden").write_text("not counted")
    assert main(["upscale", str(src), "-o", str(tmp_path / "out"), *options]) == 0
    err = capsys.readouterr().err
    assert lines(err, "note") == [f"note: {src}: skipped 2 files that are not images (.txt, no extension)"]
    assert re.search(rf"^wrote {re.escape(str(tmp_path / 'out' / 'a.png'))} \(20x20 in \d+\.\d s, [\d.e+-]+ MP/s\)$",
                     err, re.M), err
    assert re.fullmatch(r"srgan-fast: 1 written, 0 skipped, 0 failed in \d+\.\d s; [\d.e+-]+ output MP at "
                        r"[\d.e+-]+ MP/s", summary(err)[0])


def test_quiet_keeps_errors_and_the_summary_only(tmp_path, options, capsys):
    for index in range(3):
        write_image(tmp_path / f"{index}.png", noise(40, 40, seed=index))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    inputs = [str(tmp_path / name) for name in ("0.png", "1.png", "2.png", "bad.png")]
    assert main(["upscale", *inputs, "-o", str(tmp_path / "out"), "--tile", "16", "--quiet", *options]) == 1
    err = capsys.readouterr().err
    assert [line.split(":")[0] for line in err.splitlines()] == ["error", "srgan-fast"], err
    assert summary(err)[0].startswith("srgan-fast: 3 written, 0 skipped, 1 failed in ")


def test_a_tiled_image_shows_its_tiles_and_gives_the_untiled_result(tmp_path, options, capsys):
    image = noise(80, 72)  # wider than a 16-pixel core between two seam-free margins
    write_image(tmp_path / "a.png", image)
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out.png"), "--tile", "16", *options]) == 0
    err = capsys.readouterr().err
    upscaler = Upscaler(options[1], backend="native", device="cpu", tile=16)
    tiles = upscaler.plan((80, 72)).num_windows
    assert tiles > 1
    assert np.array_equal(read_image(tmp_path / "out.png"), upscaler.upscale(image))
    assert re.search(rf"72x80: +0%\|.*\| 0/{tiles} \[.*tile/s\]", err), err


def test_distributed_runs_plan_their_outputs_the_same_way(tmp_path):
    pytest.importorskip("pyarrow")
    from srgan_fast.distributed.jobs import collect_jobs
    from srgan_fast.io.batch import OutputCollision

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_image(tmp_path / folder / "x.png", noise(4, 4))
    Image.fromarray(noise(4, 4)).save(tmp_path / "a" / "x.jpg")
    inputs = [str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "b" / "x.png")]
    plan = collect_jobs(inputs, str(tmp_path / "o"), ".webp", "{stem}_{ext}")
    assert [(job.source, job.destination) for job in plan.jobs] == [
        (str(tmp_path / "a" / "x.jpg"), str(tmp_path / "o" / "a" / "x_jpg.webp")),
        (str(tmp_path / "a" / "x.png"), str(tmp_path / "o" / "a" / "x_png.webp")),
        (str(tmp_path / "b" / "x.png"), str(tmp_path / "o" / "b" / "x_png.webp"))]
    with pytest.raises(OutputCollision, match=r"a/x\.jpg and .*a/x\.png would both be written to .*o/a/x\.webp"):
        collect_jobs(inputs, str(tmp_path / "o"), ".webp")


@settings(max_examples=80, deadline=None)
@given(names=st.lists(st.tuples(st.sampled_from(["a", "b", "A"]), st.sampled_from([".png", ".jpg", ".webp", ".txt"]),
                                st.sampled_from(["", "sub/"])), max_size=8),
       suffix=st.sampled_from([None, ".png"]), name=st.sampled_from(["{stem}", "{stem}_{ext}"]))
def test_planning_runs_each_file_once_and_never_maps_two_to_one_output(names, suffix, name):
    from pathlib import PurePath

    from srgan_fast.io.batch import OutputCollision, output_name, planned_outputs

    found = [(f"{folder}{stem}{ext}", f"{folder}{stem}{ext}", PurePath(f"{folder}{stem}{ext}"))
             for stem, ext, folder in names]
    distinct = list(dict.fromkeys(source for source, _, _ in found))
    targets = [output_name(PurePath(source), suffix, name) for source in distinct]
    try:
        jobs, notes = planned_outputs(found, lambda relative: relative, suffix, name)
    except OutputCollision:
        assert len(set(targets)) < len(targets)
        return
    assert [source for source, _ in jobs] == distinct and [target for _, target in jobs] == targets
    assert len(set(targets)) == len(targets) and len(notes) == len(found) - len(distinct)
