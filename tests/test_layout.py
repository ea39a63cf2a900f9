"""The package's layering holds: no import circles, no import back up to the package root but the CLI's
version line, few top-level modules (benchmarks/import_layers.py prints the full picture)."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layout() -> dict:
    spec = importlib.util.spec_from_file_location("import_layers", ROOT / "benchmarks" / "import_layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.layout()


def test_no_circles_and_at_most_two_imports_back_up():
    layout = _layout()
    assert layout["circles"] == [], layout["circles"]
    assert len(layout["imports_back_up"]) <= 2, layout["imports_back_up"]
    assert len(layout["top_level_modules"]) <= 6, layout["top_level_modules"]


def test_the_pipeline_order_is_the_floor_order():
    floor = _layout()["floor_of"]
    pipeline = ["architecture", "reference", "weights", "backends", "api", "cli"]
    assert [floor[unit] for unit in pipeline] == sorted(floor[unit] for unit in pipeline), floor
    assert floor["tiler"] < floor["api"] and floor["io"] < floor["cli"]


def test_importing_the_package_pulls_in_no_command_line_or_optional_parts():
    program = ("import json, sys, srgan_fast; srgan_fast.upscale; "
               "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('srgan_fast.cli', "
               "'srgan_fast.distributed', 'srgan_fast.video', 'srgan_fast.serve', 'torch', 'ray', 'av')))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True,
                                       cwd=ROOT).stdout)
    assert loaded == [], loaded
