"""Builds srgan_fast._C with CMake + ninja (the pybind11 cmake_example pattern); metadata lives in pyproject.toml.

Environment switches:
  SRGAN_FAST_BUILD_NATIVE=0          skip the native engine (pure-Python install; the torch backend still works)
  SRGAN_FAST_BUILD_NATIVE=require    fail the install when the native build fails (CI: a compile error is red)
  SRGAN_FAST_CUDA=AUTO|ON|OFF        CUDA kernels: when nvcc is found (default), required, or never
  SRGAN_FAST_CUDA_ARCHITECTURES      e.g. "80;86;89;90" (default in CMakeLists.txt)
  MAX_JOBS                           parallel compile jobs
A failed native build does not fail the install: the reason goes to srgan_fast/_native_build_status.txt,
which the native backend reports as its unavailable reason.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
STATUS_NAME = "_native_build_status.txt"


class CMakeExtension(Extension):
    def __init__(self, name: str):
        super().__init__(name, sources=[])


def _write_status(paths: list[Path], reason: str) -> None:
    print(f"srgan_fast: {reason}", file=sys.stderr)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason + "\n")


class CMakeBuild(build_ext):
    def run(self) -> None:
        # Beside where _C goes: the build tree (packaged into a wheel) and, for an in-place or editable build,
        # the source tree as well (setuptools may build into the build tree and copy _C over).
        places = [Path(self.get_ext_fullpath("srgan_fast._C")).resolve().parent]
        if self.inplace or getattr(self, "editable_mode", False):
            places.append(ROOT / "srgan_fast")
        statuses = [place / STATUS_NAME for place in places]
        if os.environ.get("SRGAN_FAST_BUILD_NATIVE", "1") == "0":
            _write_status(statuses, "native engine not built (SRGAN_FAST_BUILD_NATIVE=0 at install time)")
            return
        try:
            super().run()
        except (subprocess.CalledProcessError, OSError) as exc:
            if os.environ.get("SRGAN_FAST_BUILD_NATIVE") == "require":
                raise
            _write_status(statuses, f"native build failed ({exc}); see the pip log (pip install -v) for the "
                                    "compiler output")
            return
        for status in statuses:
            status.unlink(missing_ok=True)

    def build_extension(self, ext: CMakeExtension) -> None:
        import pybind11

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_temp = Path(self.build_temp).resolve() / ext.name
        build_temp.mkdir(parents=True, exist_ok=True)
        cuda = os.environ.get("SRGAN_FAST_CUDA", "AUTO").upper()
        if cuda not in ("AUTO", "ON", "OFF"):
            raise OSError(f"SRGAN_FAST_CUDA must be AUTO, ON or OFF, got {cuda!r}")
        args = [
            f"-DSRGAN_FAST_OUTPUT_DIR={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DSRGAN_FAST_CUDA={cuda}",
            f"-DPYTHON_MODULE_EXTENSION={sysconfig.get_config_var('EXT_SUFFIX')}",
        ]
        archs = os.environ.get("SRGAN_FAST_CUDA_ARCHITECTURES")
        if archs:
            args.append(f"-DSRGAN_FAST_CUDA_ARCHITECTURES={archs}")
        ninja = _ninja_program()
        generator = ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"] if ninja else []
        jobs = os.environ.get("MAX_JOBS") or str(os.cpu_count() or 1)
        print(f"srgan_fast: native build: CUDA={cuda}, CUDA architectures={archs or 'default'}, "
              f"generator={'Ninja' if generator else 'default'}, jobs={jobs}, output={out_dir}")
        subprocess.run(["cmake", str(ROOT), *generator, *args], cwd=build_temp, check=True)
        subprocess.run(["cmake", "--build", ".", "--parallel", jobs], cwd=build_temp, check=True)


def _ninja_program() -> str | None:
    """The ninja executable: the pip package's (a build requirement) or one on PATH."""
    from shutil import which

    try:
        import ninja

        program = Path(ninja.BIN_DIR) / "ninja"
        if program.exists() or program.with_suffix(".exe").exists():
            return str(program)
    except (ImportError, AttributeError):
        pass
    return which("ninja")


setup(ext_modules=[CMakeExtension("srgan_fast._C")], cmdclass={"build_ext": CMakeBuild})
