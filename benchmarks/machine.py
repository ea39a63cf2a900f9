"""What the benchmarks record of the machine they ran on."""
from __future__ import annotations

import platform
from pathlib import Path

# The instruction sets the native engine's CPU paths choose between.
ENGINE_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def _cpuinfo() -> dict[str, str]:
    """The first core's fields of /proc/cpuinfo ({} where there is none)."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            fields.setdefault(key, value)
    except OSError:
        pass
    return fields


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what Python knows of the processor."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_details() -> dict:
    """The CPU's family and model numbers (where a hypervisor shortens the model name, e.g. to "AMD EPYC", these
    still tell its generation: family 25 model 17 is Zen 4) and which of ENGINE_FLAGS it has (/proc/cpuinfo)."""
    fields = _cpuinfo()
    if not fields:
        return {}
    flags = set(fields.get("flags", "").split())
    return {"cpu_family": fields.get("cpu family"), "cpu_model": fields.get("model"),
            "cpu_flags": [flag for flag in ENGINE_FLAGS if flag in flags]}
