"""The preflight's rules, one verdict each, from settings and what a host has
(tests/e2e/test_preflight.py runs it in the real stack)."""

from __future__ import annotations

import io
import json

import pytest

from workshop_hub import preflight
from workshop_hub.preflight import FAIL, PASS, WARN, HostFacts
from workshop_hub.settings import load_settings

GiB = 1024**3


def settings(**values: str):
    return load_settings(values)


def host(**changes) -> HostFacts:
    facts = HostFacts(
        docker_version="28.2.2",
        mem_total=64 * GiB,
        cores=16,
        images={"pytorch-workshop-lab:cpu", "pytorch-workshop-lab:cuda"},
        access_code_set=True,
        disks_free=500 * GiB,
        docker_root_free=200 * GiB,
    )
    for name, value in changes.items():
        setattr(facts, name, value)
    return facts


def by_check(found) -> dict[str, preflight.Verdict]:
    return {verdict.check: verdict for verdict in found}


def test_a_ready_host_passes_every_check():
    found = preflight.verdicts(settings(WORKSHOP_MAX_ATTENDEES="20"), host())
    assert {v.status for v in found} == {PASS}, preflight.table(found)


def test_a_missing_lab_image_fails_with_how_to_get_it():
    found = by_check(preflight.verdicts(settings(), host(images=set())))
    verdict = found["image pytorch-workshop-lab:cpu"]
    assert verdict.status == FAIL
    assert "docker compose build" in verdict.advice and "venue-bundle.sh load" in verdict.advice
    assert "image pytorch-workshop-lab:cuda" not in found  # no GPUs set: not needed


def test_memory_too_small_for_the_room_says_how_many_fit():
    verdict = by_check(
        preflight.verdicts(settings(WORKSHOP_MAX_ATTENDEES="40"), host(mem_total=32 * GiB))
    )["memory"]
    assert verdict.status == FAIL
    # 40 × 2 GB + 2 GB does not fit in 32 GB; (32 - 2) // 2 = 15 do.
    assert "WORKSHOP_MAX_ATTENDEES=15" in verdict.advice


def test_an_auto_room_always_fits_its_memory():
    verdict = by_check(preflight.verdicts(settings(), host(mem_total=8 * GiB)))["memory"]
    assert verdict.status == PASS and "room of 3" in verdict.detail


def test_many_cores_promised_on_few_is_a_warning_not_a_blocker():
    found = preflight.verdicts(settings(WORKSHOP_MAX_ATTENDEES="30"), host(cores=8))
    assert by_check(found)["cores"].status == WARN  # 60 cores promised on 8
    assert not any(v.status == FAIL for v in found)


def test_too_little_disk_for_the_work_folders_fails():
    found = by_check(
        preflight.verdicts(settings(WORKSHOP_MAX_ATTENDEES="30"), host(disks_free=20 * GiB))
    )
    verdict = found["disk for work folders"]
    assert verdict.status == FAIL and "free 40.0 GB" in verdict.advice  # 30 × 2 GB - 20 GB


def test_gpus_set_without_a_runtime_fail_with_the_toolkits_name():
    refused = "Docker on this host has no NVIDIA runtime"
    verdict = by_check(preflight.verdicts(settings(WORKSHOP_GPUS="0"), host(gpu_refused=refused)))[
        "GPUs"
    ]
    assert verdict.status == FAIL and verdict.detail == refused
    assert "NVIDIA Container Toolkit" in verdict.advice


def test_gpus_that_start_pass_and_name_the_devices():
    listing = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)\n"
    found = by_check(preflight.verdicts(settings(WORKSHOP_GPUS="0"), host(gpu_listing=listing)))
    assert found["GPUs"].status == PASS and "0" in found["GPUs"].detail
    assert found["image pytorch-workshop-lab:cuda"].status == PASS


def test_without_gpus_set_there_is_no_gpu_verdict():
    assert "GPUs" not in by_check(preflight.verdicts(settings(), host()))


def test_an_access_code_not_made_yet_is_a_warning():
    verdict = by_check(preflight.verdicts(settings(), host(access_code_set=False)))["access code"]
    assert verdict.status == WARN and "workshop-hub access-code" in verdict.advice


def test_without_docker_it_fails_with_how_to_run_it(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    out = io.StringIO()
    assert preflight.run(settings(), as_json=True, out=out) == 1
    report = json.loads(out.getvalue())
    assert report["ready"] is False
    (docker_check,) = report["checks"]
    assert docker_check["status"] == FAIL
    assert "docker compose run --rm hub workshop-hub preflight" in docker_check["advice"]


@pytest.mark.parametrize("failed", [True, False])
def test_the_table_ends_with_the_verdict_of_the_whole(failed, monkeypatch):
    facts = host(images=set()) if failed else host()
    monkeypatch.setattr(preflight, "collect", lambda s, c, e: facts)
    monkeypatch.setattr(preflight.docker, "from_env", lambda: None)
    out = io.StringIO()
    assert preflight.run(settings(), as_json=False, out=out) == int(failed)
    last = out.getvalue().strip().splitlines()[-1]
    assert last == ("NOT READY: fix each FAIL above, then run this again." if failed else "ready")


def test_a_port_held_by_another_program_fails_and_the_hubs_own_passes():
    held = by_check(preflight.verdicts(settings(), host(port_holder="the container web")))
    assert held["port"].status == FAIL and "WORKSHOP_PORT" in held["port"].advice
    ours = by_check(preflight.verdicts(settings(), host(port_holder=preflight.OURS)))
    assert ours["port"].status == PASS


def test_plain_http_open_to_the_network_is_a_warning_with_the_fix():
    found = by_check(preflight.verdicts(settings(WORKSHOP_LISTEN_ADDRESS="0.0.0.0"), host()))
    assert found["exposure"].status == WARN and "WORKSHOP_DOMAIN" in found["exposure"].advice
    https = by_check(
        preflight.verdicts(
            settings(WORKSHOP_LISTEN_ADDRESS="127.0.0.1", WORKSHOP_DOMAIN="hub.example.org"),
            host(),
        )
    )
    assert (
        https["exposure"].status == PASS and "HTTPS for hub.example.org" in https["exposure"].detail
    )
