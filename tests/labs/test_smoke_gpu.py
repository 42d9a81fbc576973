"""workshop_labs.smoke.gpu: how many GPUs the container runtime says this container has."""

from __future__ import annotations

import pytest

from workshop_labs.smoke.gpu import expected_gpu_count


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("all", None), ("", 0), ("void", 0), ("none", 0), ("1", 1), ("0,1", 2)],
)
def test_expected_gpu_count(value, expected):
    assert expected_gpu_count(value) == expected
