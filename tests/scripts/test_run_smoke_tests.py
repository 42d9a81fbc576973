"""The smoke-test runner's own logic, without Docker: options, GPU choice and the summary.

Running it against real images is tests/e2e/test_smoke_images.py.
"""

from __future__ import annotations

import pytest

from workshop_hub.settings import load_settings


def report(*verdicts: tuple[str, str, str]) -> dict:
    checks = [{"name": n, "verdict": v, "note": note} for n, v, note in verdicts]
    return {"ok": all(c["verdict"] != "fail" for c in checks), "checks": checks}


def test_summary_has_a_column_per_image_and_every_reason(runner):
    cpu = runner.ImageRun("cpu", "lab:cpu", report=report(("versions", "pass", "ok")))
    cuda = runner.ImageRun(
        "cuda",
        "lab:cuda",
        gpu_note="--gpus 1",
        report=report(("versions", "pass", "ok"), ("gpu", "fail", "no CUDA\nsecond line")),
    )
    missing = runner.ImageRun("cpu", "lab:other", problem="image lab:other is missing: build it")
    table = runner.summary_table([cpu, cuda, missing])
    lines = table.splitlines()
    assert lines[0].split() == ["check", "cpu", "cuda", "cpu"]
    assert lines[2].split() == ["container", "PASS", "PASS", "FAIL"]
    assert lines[3].split() == ["versions", "PASS", "PASS", "-"]
    assert lines[4].split() == ["gpu", "-", "FAIL", "-"]
    assert "  gpu FAIL: no CUDA" in table and "second line" not in table
    assert "cuda: lab:cuda · --gpus 1" in table
    assert "  container FAIL: image lab:other is missing: build it" in table
    assert lines[-1] == "FAILED: cuda, cpu"


def test_summary_says_ok_only_when_every_image_passed(runner):
    passed = runner.ImageRun("cpu", "lab:cpu", report=report(("gpu", "skip", "no CUDA")))
    assert passed.ok
    assert runner.summary_table([passed]).splitlines()[-1] == "OK: every image passed"
    assert not runner.ImageRun("cpu", "lab:cpu").ok  # no report came back


def test_named_gpus_win_over_settings_and_detection(runner):
    settings = load_settings({"WORKSHOP_GPUS": "2,3"})
    # No Docker client is needed: named GPUs are never probed.
    assert runner.choose_gpus(None, settings, ("1",), "image") == (("1",), "--gpus 1")
    assert runner.choose_gpus(None, settings, (), "image") == ((), "--gpus none")
    assert runner.choose_gpus(None, settings, None, "image") == (("2", "3"), "WORKSHOP_GPUS=2,3")


def test_options_are_passed_through_to_the_smoke_test(runner):
    args = runner.parse_args(["--only", "versions,lab:02", "--skip", "amp", "--lab-budget", "60"])
    assert runner.smoke_arguments(args) == [
        "--only",
        "versions,lab:02",
        "--skip",
        "amp",
        "--lab-budget",
        "60.0",
    ]
    assert runner.smoke_arguments(runner.parse_args([])) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--images", "gpu"], "choose from cpu, cuda"),
        (["--gpus", "all"], "device ids"),
        (["--gpus", "auto"], "name device ids"),
        (["--image-override", "gpu=x:y"], "FLAVOR=IMAGE"),
        (["--image-override", "cpu=Not An Image"], "Docker image name"),
    ],
)
def test_bad_options_are_refused_with_the_fix(runner, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        runner.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_gpu_refusals_are_told_apart_from_other_refusals(runner):
    assert runner.is_gpu_refusal(Exception('could not select device driver "" with [[gpu]]'))
    assert runner.is_gpu_refusal(Exception("nvidia-container-cli: initialization error"))
    assert not runner.is_gpu_refusal(Exception("Range of CPUs is from 0.01 to 2.00"))
