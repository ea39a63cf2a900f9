"""Backend options are checked in Python (srgan_fast.options) before they reach compiled code, whose binding
refuses a wrong type by printing every argument, the weights among them (320 KB for srresnet)."""
from __future__ import annotations

import numpy as np
import pytest

from srgan_fast import Upscaler
from srgan_fast.architecture import srresnet
from srgan_fast.options import parse_cpu_path, parse_threads
from srgan_fast.weights import random_weights


@pytest.mark.parametrize("value", ["x", "2", 2.5, True, -1, 4097, None])
def test_a_thread_count_is_an_int_from_0_to_the_cap(value):
    with pytest.raises(ValueError) as info:
        parse_threads(value)
    assert str(info.value) == f"threads must be an int from 0 (one per core) to 4096, got {value!r}"


def test_thread_counts_of_any_integer_type_become_ints():
    assert [parse_threads(v) for v in (0, np.int32(3), 4096)] == [0, 3, 4096]
    assert type(parse_threads(np.int64(2))) is int


@pytest.mark.parametrize("value", ["AVX2", "sse", 3, None])
def test_a_cpu_path_is_one_of_the_engines(value):
    with pytest.raises(ValueError) as info:
        parse_cpu_path(value)
    assert str(info.value) == (f"unknown cpu path {value!r}: expected 'auto', 'amx', 'avx512', 'avx2', 'scalar', "
                               "'reference' or 'amx_emulated'")
    assert parse_cpu_path("scalar") == "scalar"


@pytest.mark.native
@pytest.mark.parametrize("option, message", [
    ({"threads": "x"}, "threads must be an int from 0 (one per core) to 4096, got 'x'"),
    ({"threads": 2.5}, "threads must be an int from 0 (one per core) to 4096, got 2.5"),
    ({"path": 3}, "unknown cpu path 3: expected 'auto', 'amx', 'avx512', 'avx2', 'scalar', 'reference' or 'amx_emulated'"),
])
def test_the_native_backend_refuses_a_bad_option_on_one_line(option, message):
    with pytest.raises(ValueError) as info:
        Upscaler(random_weights(srresnet(1, 8)), backend="native", device="cpu", **option)
    assert str(info.value) == message
