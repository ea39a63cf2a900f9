"""srgan_fast.distributed on a local Ray (2 CPUs): the same files as the local command, failures as rows, resume,
overwrite, a killed worker retried, and the command's exit statuses."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'srgan_fast[ray]')")

from conftest import random_generator_weights  # noqa: E402

from srgan_fast.cli import main as cli  # noqa: E402
from srgan_fast.cli.ray import register_ray_options, run_upscale_on_ray  # noqa: E402
from srgan_fast.distributed import upscale_files  # noqa: E402
from srgan_fast.distributed.images import RAN_HERE, WORKER_DEATH_RETRIES  # noqa: E402
from srgan_fast.distributed.jobs import collect_jobs  # noqa: E402
from srgan_fast.distributed.report import REPORT_NAME  # noqa: E402
from srgan_fast.distributed.storage import local_copy, local_target, remove_abandoned_temporaries  # noqa: E402
from srgan_fast.distributed.worker import KILLS_ENV  # noqa: E402
from srgan_fast.io.batch import OutputCollision  # noqa: E402
from srgan_fast.io.images import ImageFile  # noqa: E402
from srgan_fast.io.save import save_image  # noqa: E402
from srgan_fast.weights import save_weights  # noqa: E402

pytestmark = pytest.mark.native
IMAGES = {"a.png", "nested/deeper/rgba.png", "deep16.png", "nested/photo.jpg"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A folder of every kind of file the rules and the writers treat apart, and the local command's result."""
    root = tmp_path_factory.mktemp("distributed")
    weights = random_generator_weights(num_blocks=1, channels=8)
    save_weights(root / "tiny.safetensors", weights.tensors, weights.metadata)
    rng = np.random.default_rng(3)
    photos = root / "photos"
    (photos / "nested" / "deeper").mkdir(parents=True)
    (photos / ".cache").mkdir()
    save_image(photos / "a.png", ImageFile([rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)], "PNG"))
    save_image(photos / "nested/deeper/rgba.png", ImageFile([rng.integers(0, 256, (9, 7, 4), dtype=np.uint8)], "PNG"))
    save_image(photos / "deep16.png", ImageFile([rng.integers(0, 65536, (8, 8, 3), dtype=np.uint16)], "PNG"))
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    save_image(photos / "nested/photo.jpg",
               ImageFile([rng.integers(0, 256, (11, 9, 3), dtype=np.uint8)], "JPEG", icc_profile=icc))
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.new("RGB", (4, 4)).save(photos / ".hidden.png")
    Image.new("RGB", (4, 4)).save(photos / ".cache" / "thumb.png")
    (photos / "notes.txt").write_text("not an image")
    local = root / "local"
    status = cli.main(["upscale", str(photos), "-o", str(local), "--model", str(root / "tiny.safetensors"),
                       "--backend", "native", "--precision", "fp32"])
    assert status == 1  # the broken file
    return root


@pytest.fixture(scope="module")
def local_ray(tree):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {KILLS_ENV: str(tree / "kills"), "SRGAN_FAST_CACHE_DIR": str(tree / "cache")}})
    yield
    ray.shutdown()


def run(tree, output, **options):
    return upscale_files([tree / "photos"], output, model=tree / "tiny.safetensors", backend="native",
                         precision="fp32", **options)


@pytest.fixture(scope="module")
def first_run(tree, local_ray):
    return run(tree, tree / "first", workers=2)


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def report_lines(summary) -> list[dict]:
    return [json.loads(line) for line in Path(summary.report).read_text().splitlines()]


@pytest.mark.slow
def test_outputs_equal_the_local_command_byte_for_byte(tree, first_run):
    written = files_under(tree / "first")
    assert written.pop(REPORT_NAME)
    assert written == files_under(tree / "local")
    assert set(written) == IMAGES  # relative paths kept; hidden files, text and the broken file not written


@pytest.mark.slow
def test_broken_file_is_one_failed_row_and_the_report_is_right(tree, first_run):
    assert (first_run.done, first_run.skipped, first_run.failed) == (4, 0, 1)
    assert first_run.report == str(tree / "first" / REPORT_NAME)
    lines = {Path(line["source"]).relative_to(tree / "photos").as_posix(): line for line in report_lines(first_run)}
    assert set(lines) == IMAGES | {"broken.png"}
    broken = lines.pop("broken.png")
    assert broken["status"] == "failed"
    assert broken["cause"].startswith(f"{tree / 'photos' / 'broken.png'}: unreadable or truncated image")
    for relative, line in lines.items():
        assert line["status"] == "done" and line["cause"] == "" and line["seconds"] > 0
        assert line["destination"] == str(tree / "first" / relative)
        with Image.open(line["destination"]) as output:
            assert line["output_megapixels"] == pytest.approx(output.width * output.height / 1e6)
    assert first_run.output_megapixels == pytest.approx(sum(line["output_megapixels"] for line in lines.values()))
    assert "4 done, 0 skipped, 1 failed" in first_run.line()


@pytest.mark.slow
def test_a_second_run_skips_every_output_and_overwrite_rewrites_them(tree, first_run):
    output = tree / "again"
    shutil.copytree(tree / "first", output)
    before = {p: p.stat().st_ino for p in output.rglob("*") if p.is_file()}
    resumed = run(tree, output, workers=1)
    assert (resumed.done, resumed.skipped, resumed.failed) == (0, 4, 1)
    assert all(p.stat().st_ino == inode for p, inode in before.items() if p.name != REPORT_NAME)
    assert {line["status"] for line in report_lines(resumed)} == {"skipped", "failed"}

    rewritten = run(tree, output, workers=1, overwrite=True)
    assert (rewritten.done, rewritten.skipped, rewritten.failed) == (4, 0, 1)
    assert all(p.stat().st_ino != inode for p, inode in before.items() if p.name != REPORT_NAME)
    assert files_under(output) | {REPORT_NAME: b""} == files_under(tree / "local") | {REPORT_NAME: b""}


@pytest.mark.slow
def test_bare_ray_without_a_cluster_runs_in_this_process_without_ray_and_writes_the_same_bytes(tree):
    # A process of its own: this one imports Ray, and local_ray may have connected it. No RAY_ADDRESS: no cluster.
    environment = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    code = ("import sys; from srgan_fast.cli import main; status = main.main(sys.argv[1:]); "
            "print('ray imported' if 'ray' in sys.modules else 'ray never imported'); sys.exit(status)")
    output = tree / "here"
    finished = subprocess.run([sys.executable, "-c", code, "upscale", str(tree / "photos"), "-o", str(output),
                               "--model", str(tree / "tiny.safetensors"), "--backend", "native", "--precision",
                               "fp32", "--ray"], env={**environment, "OMP_WAIT_POLICY": "passive"},
                              capture_output=True, text=True, timeout=300)
    assert finished.returncode == 1, finished.stderr  # the broken file, as locally
    assert finished.stdout.strip() == "ray never imported"  # so no Ray instance was started
    lines = finished.stderr.splitlines()
    assert lines[0] == f"note: {RAN_HERE}"
    assert lines[-1].startswith("srgan-fast: 4 done, 0 skipped, 1 failed in "), lines
    written = files_under(output)
    statuses = [json.loads(line)["status"] for line in written.pop(REPORT_NAME).decode().splitlines()]
    assert sorted(statuses) == ["done"] * 4 + ["failed"]
    assert written == files_under(tree / "local")


def started_upscale_workers() -> set[str]:
    """The Ray Data actors of upscale_files that started (a pid and a start time), from the GCS's actor table."""
    from ray._private import state  # the state API proper needs the dashboard, which local_ray does not start

    return {actor_id for actor_id, actor in state.actors().items()
            if "UpscaleWorker" in actor["ActorClassName"] and actor["StartTime"] and actor["Pid"]}


def wait_for_free_cpus(count: int) -> None:
    """Until the actors of earlier runs are gone (stopped after a run returns). Not after a run whose worker died on
    every attempt: Ray restarts it once more and Ray Data keeps it, with its CPU, while the driver is connected."""
    from ray._private import state

    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < count:
        alive = [(actor["ActorClassName"], actor["State"], actor["NumRestarts"]) for actor in state.actors().values()
                 if actor["State"] != "DEAD"]
        assert time.monotonic() < deadline, f"{ray.available_resources()}, alive: {alive}"
        time.sleep(0.1)


@pytest.mark.slow
def test_without_workers_the_pool_has_as_many_actors_as_the_cpus_hold(tree, local_ray):
    wait_for_free_cpus(2)
    before = started_upscale_workers()
    pooled = run(tree, tree / "pooled")
    assert (pooled.done, pooled.failed) == (4, 1)
    assert len(started_upscale_workers() - before) == 2  # local_ray's 2 CPUs, 1 thread each (it stayed at 1)
    wait_for_free_cpus(2)
    before = started_upscale_workers()
    assert run(tree, tree / "pooled-threads", threads_per_worker=2).done == 4
    assert len(started_upscale_workers() - before) == 1  # 2 CPUs hold one worker of 2 threads


def arm_kills(tree, count: int, target: str = "") -> Path:
    """``count`` worker deaths, at the first writes to come, or at every write of the output named ``target``."""
    kills = tree / "kills"
    kills.mkdir(exist_ok=True)
    for index in range(count):
        (kills / str(index)).write_text(target)
    return kills


@pytest.mark.slow
def test_a_worker_killed_mid_write_is_retried_and_leaves_nothing_half_written(tree, local_ray):
    kills = arm_kills(tree, 1)  # the first worker to reach a write dies in it
    killed = run(tree, tree / "killed", workers=1)
    assert not any(kills.iterdir())
    assert (killed.done, killed.skipped, killed.failed) == (4, 0, 1)
    written = files_under(tree / "killed")
    written.pop(REPORT_NAME)
    assert written == files_under(tree / "local")  # no temporary file left beside any output


@pytest.mark.slow
def test_a_file_whose_worker_dies_on_every_attempt_is_a_failed_row(tree, local_ray):
    kills = arm_kills(tree, WORKER_DEATH_RETRIES + 1, target="a.png")
    lost = run(tree, tree / "lost", workers=1)
    assert not any(kills.iterdir())
    lines = report_lines(lost)
    gave_up = [line for line in lines if "its worker died on each of" in line["cause"]]
    # Only the file that kills its worker: the files queued behind it (broken.png's own failure among them)
    # are not taken down with it.
    assert [(line["source"], line["status"]) for line in gave_up] == [(str(tree / "photos" / "a.png"), "failed")]
    assert (lost.done, lost.failed) == (3, 2)
    written = files_under(tree / "lost")
    written.pop(REPORT_NAME)
    local = files_under(tree / "local")
    assert all(local[name] == data for name, data in written.items())  # every output present is complete


def namespace(tree, inputs, output, **changes):
    """The upscale command's arguments as its own parser makes them, with ``changes`` applied."""
    args = cli.build_parser().parse_args(["upscale", *map(str, inputs), "-o", str(output), "--model",
                                          str(tree / "tiny.safetensors"), "--backend", "native", "--precision",
                                          "fp32", "--max-pixels", str(10**6), "--ray", "--workers", "1"])
    return argparse.Namespace(**{**vars(args), **changes})


@pytest.mark.slow
def test_command_exit_statuses(tree, local_ray, capsys):
    photos = tree / "photos"
    assert run_upscale_on_ray(namespace(tree, [photos / "a.png"], tree / "one" / "a.png")) == 0
    assert (tree / "one" / "a.png").read_bytes() == (tree / "local" / "a.png").read_bytes()
    assert (tree / "one" / REPORT_NAME).exists()
    assert run_upscale_on_ray(namespace(tree, [photos / "broken.png"], tree / "bad")) == 1
    assert f"error: {photos / 'broken.png'}: unreadable" in capsys.readouterr().err
    usage = [namespace(tree, [photos], tree / "out.png"), namespace(tree, [photos], tree / "x", device="cuda"),
             namespace(tree, [photos], tree / "x", model="no-such-model")]
    for args in usage:
        assert run_upscale_on_ray(args) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors[0] == (f"error: -o {tree / 'out.png'} names a file, which takes one input file; got the "
                         f"folder {photos} (give an output folder: an existing one or a name without an extension)")
    assert errors[1].startswith("error: --device cuda does not apply with --ray")
    assert errors[2].startswith("error: unknown model 'no-such-model'")


@pytest.mark.slow
def test_int8_calibrated_from_a_folder_equals_the_local_command(tree, local_ray, monkeypatch):
    from srgan_fast import _C

    if not _C.cpu_info()["paths_int8"]:
        pytest.skip("this CPU or build has no int8 path")
    # Not the workers' cache (local_ray's): they calibrate from the folder themselves, as on another machine.
    monkeypatch.setenv("SRGAN_FAST_CACHE_DIR", str(tree / "driver-cache"))
    samples = tree / "samples"
    samples.mkdir()
    rng = np.random.default_rng(8)
    for k in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(samples / f"{k}.png")
    photos, model = tree / "photos", str(tree / "tiny.safetensors")
    assert cli.main(["upscale", str(photos / "a.png"), "-o", str(tree / "int8-local.png"), "--model", model,
                     "--backend", "native", "--precision", "int8", "--calibration-images", str(samples)]) == 0
    summary = upscale_files([photos / "a.png"], tree / "int8-ray" / "a.png", model=model, backend="native",
                            precision="int8", calibration_images=str(samples), workers=1)
    assert summary.failed == 0
    assert (tree / "int8-ray" / "a.png").read_bytes() == (tree / "int8-local.png").read_bytes()
    assert (tree / "int8-ray" / "a.png").read_bytes() != (tree / "local" / "a.png").read_bytes()  # not fp32


def test_ray_options_parse_and_refuse_bad_values(capsys):
    parser = argparse.ArgumentParser(prog="srgan-fast upscale")
    register_ray_options(parser)
    assert parser.parse_args(["--ray"]).ray == "" and parser.parse_args([]).ray is None
    parsed = parser.parse_args(["--ray", "auto", "--workers", "3", "--gpus-per-worker", "0.5", "--no-resume"])
    assert (parsed.ray, parsed.workers, parsed.gpus_per_worker, parsed.resume) == ("auto", 3, 0.5, False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--workers", "0"])
    assert "expected a positive whole number, got '0'" in capsys.readouterr().err


def test_job_rules_skip_hidden_files_and_the_output_folder_inside_the_input(tmp_path):
    (tmp_path / "in" / ".git").mkdir(parents=True)
    for name in ("x.png", "y.tga", ".git/z.png", "out/old.png", "sub/.h.png"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).touch()
    plan = collect_jobs([str(tmp_path / "in")], str(tmp_path / "in" / "out"))
    assert [(Path(j.source).name, Path(j.destination).relative_to(tmp_path / "in" / "out").as_posix())
            for j in plan.jobs] == [("x.png", "x.png"), ("y.tga", "y.png")]
    assert str(tmp_path / "o" / "x.webp") in {job.destination for job in
                                              collect_jobs([str(tmp_path / "in")], str(tmp_path / "o"), ".webp").jobs}
    (tmp_path / "empty").mkdir()
    assert collect_jobs([str(tmp_path / "empty")], str(tmp_path / "o")).problems[0].startswith(
        f"{tmp_path / 'empty'}: no images found")


def test_one_file_name_in_two_folders_of_one_name_is_refused_with_what_keeps_them_apart(tmp_path):
    for parent in ("a", "b"):
        (tmp_path / parent / "photos").mkdir(parents=True)
        (tmp_path / parent / "photos" / "x.png").touch()
    a, b = str(tmp_path / "a" / "photos"), str(tmp_path / "b" / "photos")
    with pytest.raises(OutputCollision) as refused:
        collect_jobs([a, b], str(tmp_path / "out"))
    # Not --name '{stem}_{ext}': the two names are the same whatever the template.
    assert str(refused.value) == (f"{a}/x.png and {b}/x.png would both be written to {tmp_path}/out/photos/x.png: "
                                  f"the folders {a} and {b} have the same name, which each keeps under the output "
                                  "(--name cannot change it); upscale them in separate runs")
    twice = collect_jobs([a, a + "/"], str(tmp_path / "out"))  # one folder given twice is not two
    assert twice.notes == [f"{a}/x.png: given more than once; upscaled once"]


def test_only_the_temporaries_of_these_destinations_are_removed(tmp_path):
    names = (".a.png.srgan-fast-7.k3j_9x0q.png", ".a.png.srgan-fast-7.short.png", ".a.png.k3j_9x0q.png",
             ".b.png.srgan-fast-7.k3j_9x0q.png", "a.png", ".keep")
    for name in names:
        (tmp_path / name).touch()
    (tmp_path / ".a.png.srgan-fast-8.k3j_9x0q.png").mkdir()  # named like one, but a folder: never removed
    assert remove_abandoned_temporaries([str(tmp_path / "a.png")]) == [str(tmp_path / names[0])]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*names[1:], ".a.png.srgan-fast-8.k3j_9x0q.png"])


def test_remote_locations_are_staged_and_copied_up_whole(tmp_path):
    source = tmp_path / "in.png"
    source.write_bytes(b"pixels")
    with local_copy(f"file://{source}") as staged:
        assert staged != str(source) and Path(staged).read_bytes() == b"pixels"
    target = tmp_path / "made" / "here" / "out.png"
    with pytest.raises(RuntimeError), local_target(f"file://{target}") as staged:
        Path(staged).write_bytes(b"half")
        raise RuntimeError("the encoder failed")
    assert not target.exists()
    with local_target(f"file://{target}") as staged:
        Path(staged).write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
