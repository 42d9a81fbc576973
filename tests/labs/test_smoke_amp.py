"""The smoke check's AMP training: fp16 with a loss scale learns, and a scale that overflows
fp16 is caught (CPU autocast runs float16 too, so this needs no GPU)."""

from __future__ import annotations

import pytest
import torch

from workshop_labs.smoke import amp
from workshop_labs.smoke.core import Failed

SIZES = {"width": 32, "batch": 16, "steps": 6}


def test_fp16_with_a_loss_scale_learns_and_takes_every_step():
    run = amp.train_steps(torch, "cpu", torch.float16, scaled=True, **SIZES)
    amp.assert_learns(run, "cpu float16", expected_dtype="float16")
    assert run.loss_scale == amp.LOSS_SCALE
    assert run.skipped_steps == 0


def test_a_loss_scale_that_overflows_fp16_fails_the_check(monkeypatch):
    monkeypatch.setattr(amp, "LOSS_SCALE", 1e30)  # far beyond fp16's largest number, 65,504
    run = amp.train_steps(torch, "cpu", torch.float16, scaled=True, **SIZES)
    assert run.skipped_steps == SIZES["steps"]
    with pytest.raises(Failed, match="inf/nan gradients"):
        amp.assert_learns(run, "cpu float16", expected_dtype="float16")
