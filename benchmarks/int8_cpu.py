"""The CPU peers side by side, uint8 host to host, one run: native int8/bf16/fp32, OpenVINO int8 (NNCF, by
default and with native int8's float convs left out; its float layers at f32, and at bf16 where the CPU has
it) / bf16 / fp32, onnxruntime fp32 and its own int8 (QDQ), torch bf16 channels_last, each with its PSNR
against native fp32 on a calibration crop.

    python benchmarks/int8_cpu.py --model srresnet --sizes 128 512 --repeats 5 3 --json out.json

Every path gets a uint8 [1, h, w, 3] image and returns the uint8 [1, 4h, 4w, 3] result (the project's ONNX graph
with io="uint8" does the conversions inside the graph for OpenVINO and onnxruntime). OpenVINO's and
onnxruntime's int8 are calibrated on the same crops of the same images as the native table
(srgan_fast.backends.native_int8: TILE, MAX_TILES, training split; a model with no shipped table gets its native
table from those crops too). Each path is warmed up, then the paths are timed in interleaved rounds (one call of
each per round) and the median is reported, with the ratio of each native row against OpenVINO at its precision.
Native rows name their kernel path; where auto picks the AMX tiles, the avx512 path runs beside them. A path
that cannot run here is listed with why.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_details, cpu_name  # noqa: E402
from srgan_fast.api import Upscaler  # noqa: E402
from srgan_fast.backends import native_int8  # noqa: E402
from srgan_fast.backends.calibration import calibration_tiles  # noqa: E402
from srgan_fast.architecture import int8_convs  # noqa: E402
from srgan_fast.backends.onnx_graph import build_onnx_model  # noqa: E402
from srgan_fast.io.atomic import write_bytes_atomically  # noqa: E402
from srgan_fast.weights import load_weights  # noqa: E402


def calibration_images(folders: list[str]) -> np.ndarray:
    """The native table's crops (uint8 NHWC): the training split of the training folders."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from training.data import list_images, split_train_val

    train, _ = split_train_val(list_images(folders))
    tiles = calibration_tiles(train, native_int8.TILE, native_int8.MAX_TILES)
    return np.round(tiles * 255).astype(np.uint8)


def native_table_from(weights, calib: np.ndarray) -> None:
    """For a model with no shipped table, native int8's table from the peers' calibration crops, in the cache
    (SRGAN_FAST_CACHE_DIR, set by main to a temporary folder), where Upscaler finds it."""
    if native_int8.shipped_table(weights) is None:
        native_int8.write_table(native_int8.cached_table_path(weights),
                                native_int8.table_from_tiles(weights, calib.astype(np.float32) / 255))


def psnr_against(reference: np.ndarray, paths: dict, image: np.ndarray) -> dict:
    """Each path's PSNR (dB, 8 bits) against `reference` on `image`: how far its precision moves the pixels."""
    result = {}
    for key, run in paths.items():
        if callable(run):
            error = np.mean((np.asarray(run(image), np.float64).reshape(reference.shape) - reference) ** 2)
            result[key] = float("inf") if error == 0 else float(10 * np.log10(255**2 / error))
    return result


def native_paths(model: str, size: int, wanted) -> dict:
    """Native int8/bf16/fp32 on the path auto picks, and on avx512 beside it where auto picks another (amx) and
    that row is wanted: the matrix unit against the vector units in the same run."""
    paths = {}
    for precision in ("int8", "bf16", "fp32"):
        try:
            up = Upscaler(model, backend="native", precision=precision, tile=size)
        except ValueError as exc:
            paths[f"native {precision}"] = str(exc)
            continue
        chosen = up.backend.engine.path
        paths[f"native {precision} ({chosen})"] = lambda x, up=up: up.upscale(x[0])
        if chosen != "avx512" and wanted(f"native {precision} (avx512)"):
            try:
                vector = Upscaler(model, backend="native", precision=precision, tile=size, path="avx512")
            except ValueError:
                continue
            paths[f"native {precision} (avx512)"] = lambda x, up=vector: up.upscale(x[0])
    return paths


def openvino_paths(onnx_path: Path, network, calib: np.ndarray | None, hw: tuple[int, int], threads: int,
                   cache: dict, wanted=lambda name: True) -> dict:
    """OpenVINO int8 (NNCF on ``calib``; left out when it is None), bf16 and fp32 on the graph reshaped to hw,
    the rows ``wanted`` says yes to (NNCF runs only for a scope with a wanted row: minutes each).

    int8 as NNCF quantizes by default (preset "performance": symmetric activations); with preset "mixed"
    (asymmetric activations, which OpenVINO's documentation advises for networks whose activations are not
    ReLU, as LeakyReLU and PReLU are not); and with the convs native int8 keeps in floating point
    (``int8_convs``' complement) left out of its scope ("policy"; names its graph no longer has, such as a conv
    OpenVINO merged with the residual's scale, stay in): each with its float layers at f32, and at bf16 where
    the CPU has it, as native int8 runs its own."""
    try:
        import openvino as ov
    except ImportError as exc:
        return {"openvino": f"not installed ({exc})"}
    core = ov.Core()
    quantized = set(int8_convs(network))
    policy_ignored = [f"{conv.name}.out/WithoutBiases" for conv in network.layers if conv.name not in quantized]
    scopes = {"int8": ([], "PERFORMANCE"), "int8 mixed": ([], "MIXED"), "int8 policy": (policy_ignored, "PERFORMANCE")}
    rows = [(f"openvino {key}{rest}", key, hint) for key in scopes for rest, hint in (("", "f32"), ("+bf16", "bf16"))]
    rows = [row for row in rows if wanted(row[0])]
    for key, (ignored, preset) in scopes.items():
        if calib is None or key in cache or all(row[1] != key for row in rows):
            continue
        try:
            import nncf

            model = ov.convert_model(str(onnx_path))
            dataset = nncf.Dataset([tile[None] for tile in calib])
            cache[key] = nncf.quantize(model, dataset, subset_size=len(calib),
                                       preset=getattr(nncf.QuantizationPreset, preset),
                                       ignored_scope=nncf.IgnoredScope(names=ignored, validate=False))
        except Exception as exc:  # noqa: BLE001 - reported as the row's reason
            cache[key] = f"NNCF quantization failed: {exc}"
    paths = {}
    for name, key, hint in rows + [("openvino bf16", None, "bf16"), ("openvino fp32", None, "f32")]:
        if key is not None and calib is None:
            continue
        base = cache[key] if key is not None else ov.convert_model(str(onnx_path))
        if isinstance(base, str):
            paths[name] = base
            continue
        model = base.clone()
        model.reshape([1, *hw, 3])
        config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        try:
            compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as exc:
            paths[name] = f"does not compile: {exc}"
            continue
        actual = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        request = compiled.create_infer_request()
        if name.endswith("+bf16") and actual != "bf16":
            continue  # the same as the f32 row here
        label = name if hint == actual else f"{name} (ran as {actual})"
        paths[label] = lambda x, r=request: r.infer([x])[0]
    return paths


def onnxruntime_paths(onnx_path: Path, calib: np.ndarray, threads: int, wanted) -> dict:
    """onnxruntime on the dynamic-shape graph, and its static QDQ int8 quantization (made once per run, only where
    that row is wanted: its calibration alone takes minutes)."""
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_static)
    except ImportError as exc:
        return {"onnxruntime": f"not installed ({exc})"}

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"image": tile[None]} for tile in calib])

        def get_next(self):
            return next(self.items, None)

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    paths = {}
    sessions = {"onnxruntime fp32": onnx_path} if wanted("onnxruntime fp32") else {}
    q_path = onnx_path.with_name("int8.onnx")
    try:
        if wanted("onnxruntime int8"):
            if not q_path.exists():
                quantize_static(str(onnx_path), str(q_path), Reader(), quant_format=QuantFormat.QDQ,
                                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            sessions["onnxruntime int8"] = q_path
    except Exception as exc:  # noqa: BLE001
        paths["onnxruntime int8"] = f"quantize_static failed: {exc}"
    for name, path in sessions.items():
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        paths[name] = lambda x, s=session: s.run(None, {"image": x})[0]
    return paths


def torch_paths(model: str, size: int) -> dict:
    try:
        up = Upscaler(model, backend="torch", device="cpu", precision="bf16", tile=size)
    except (ImportError, ValueError) as exc:
        return {"torch bf16 channels_last": str(exc)}
    return {"torch bf16 channels_last": lambda x: up.upscale(x[0])}


def time_paths(paths: dict, image: np.ndarray, repeats: int) -> dict:
    runnable = {k: f for k, f in paths.items() if callable(f)}
    for f in runnable.values():
        f(image)
    times = {k: [] for k in runnable}
    for _ in range(repeats):
        for k, f in runnable.items():
            start = time.perf_counter()
            f(image)
            times[k].append(time.perf_counter() - start)
    return {k: {"ms": 1000 * statistics.median(t), "runs_ms": [1000 * v for v in t]} for k, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="srresnet")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, nargs="+", default=[5, 3], help="per size")
    parser.add_argument("--data", nargs="+", default=["/work/shared/data/train/CSun_Hays80",
                                                      "/work/shared/data/train/CUrban100"])
    parser.add_argument("--skip", nargs="*", default=[],
                        help="rows to leave out, by substring of their names: '(avx512)' also drops 'native fp32 "
                             "(avx512)' where avx512 is fp32's own path; 'int8 (avx512)' and 'bf16 (avx512)' drop "
                             "only the vector rows beside amx")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    threads = os.cpu_count() or 1
    weights = load_weights(args.model)
    calib = calibration_images(args.data)
    rng = np.random.default_rng(0)
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": cpu_name(), "cpu": cpu_details(), "cores": threads, "model": args.model,
              "calibration": f"{len(calib)} crops {native_int8.TILE} of the training split", "sizes": {}}
    ov_cache: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SRGAN_FAST_CACHE_DIR"] = tmp
        native_table_from(weights, calib)
        onnx_path = Path(tmp) / "model.onnx"
        onnx_path.write_bytes(build_onnx_model(weights, io="uint8").SerializeToString())

        def wanted(name: str) -> bool:
            return not any(s in name for s in args.skip)

        for size, repeats in zip(args.sizes, args.repeats):
            # A row that is skipped is not built (onnxruntime's int8 calibration alone takes minutes).
            paths = {**native_paths(args.model, size, wanted),
                     **(openvino_paths(onnx_path, weights.network, calib, (size, size), threads, ov_cache, wanted)
                        if wanted("openvino") else {}),
                     **(onnxruntime_paths(onnx_path, calib, threads, wanted) if wanted("onnxruntime") else {}),
                     **(torch_paths(args.model, size) if wanted("torch") else {})}
            paths = {k: v for k, v in paths.items() if wanted(k)}
            image = rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8)
            rows = time_paths(paths, image, repeats)
            rows.update({k: {"unavailable": v} for k, v in paths.items() if not callable(v)})
            # Quality: every path against native fp32 on a crop of a calibration image (not the timed noise).
            fp32 = next((k for k in paths if k.startswith("native fp32") and callable(paths[k])), None)
            if fp32 is not None:
                photo = calib[:1]
                photo = np.pad(photo, ((0, 0), (0, max(0, size - photo.shape[1])), (0, max(0, size - photo.shape[2])),
                                       (0, 0)), mode="symmetric")[:, :size, :size]
                photo = np.ascontiguousarray(photo)
                reference = np.asarray(paths[fp32](photo), np.float64)
                for key, db in psnr_against(reference, paths, photo).items():
                    rows[key]["psnr_vs_native_fp32_db"] = db
            for key, row in rows.items():  # each native row against OpenVINO at its precision
                if not key.startswith("native ") or "ms" not in row:
                    continue
                precision = key.split()[1]
                anchors = [f"openvino {precision}"]
                if precision == "int8":  # every OpenVINO int8 row: NNCF's presets and scopes, f32 or bf16 float layers
                    anchors = [f"openvino int8{scope}{rest}" for scope in ("", " mixed", " policy")
                               for rest in ("", "+bf16")]
                for anchor in anchors:
                    if "ms" in rows.get(anchor, {}):
                        key_name = anchor.replace(" ", "_").replace("+", "_")
                        row[f"x_vs_{key_name}"] = rows[anchor]["ms"] / row["ms"]
            report["sizes"][str(size)] = rows
            print(f"{size}x{size} ({repeats} interleaved rounds, median ms):")
            for k, r in rows.items():
                extra = "  ".join(f"{a[5:]} {v:.2f}x" for a, v in r.items() if a.startswith("x_vs_"))
                if "psnr_vs_native_fp32_db" in r:
                    extra += f"  {r['psnr_vs_native_fp32_db']:.1f} dB vs native fp32"
                print(f"  {k:34} {r['ms']:9.1f}  {extra}" if "ms" in r else f"  {k:34} unavailable: {r['unavailable']}")
    if args.json:
        write_bytes_atomically(args.json, (json.dumps(report, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
