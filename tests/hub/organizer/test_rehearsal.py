import argparse
import contextlib
import io
import json
import os
import re
import socket
from pathlib import Path

import numpy
import pytest

from workshop_hub.organizer.cli import _rooms
from workshop_hub.organizer.rehearsal import (
    FIRST_CELL,
    FIRST_CELL_OUTPUT,
    METRICS,
    REHEARSAL_NAME,
    AttendeeRecord,
    Burst,
    RehearsalError,
    build_report,
    check_hub,
    check_request,
    compare_warming_with_spawns,
    counter_line,
    cpu_model,
    docker_names,
    draw_timeline,
    event_phase,
    host_busy_cores,
    page_message,
    parse_event,
    percentile,
    process_role,
    process_usage,
    rehearsal_names,
    render_comparison,
    render_table,
    stats_cpu_seconds,
    stats_memory,
    timeline_segments,
)
from workshop_hub.settings import USERNAME_PATTERN, load_settings

LAB1 = Path(__file__).resolve().parents[3] / "labs" / "01_intro_to_pytorch.py"
GiB = 1024**3
HOST = {"cores": 2, "memory_bytes": 24 * GiB, "cpu_model": "Test CPU", "spawn_concurrency": 2}
FLOORS = {
    "login_s": 0.05,
    "server_start_s": 2.0,
    "first_cell_s": 2.5,
    "container_cpu_s": 2.0,
    "memory_idle_bytes": 100_000_000,
}


def test_names_are_valid_usernames_unique_per_run_and_recognisable():
    names = rehearsal_names(12)
    assert len(set(names)) == 12
    assert names[0].endswith("-01") and names[11].endswith("-12")
    for name in names:
        assert re.fullmatch(USERNAME_PATTERN, name)
        assert REHEARSAL_NAME.fullmatch(name)
    assert rehearsal_names(200, "beef")[-1] == "rehearsal-beef-200"
    assert REHEARSAL_NAME.fullmatch("rehearsal-beef-200")
    assert not REHEARSAL_NAME.fullmatch("ada")
    assert not REHEARSAL_NAME.fullmatch("rehearsal-notes")


def test_the_first_cell_is_lab_1s_own_code():
    lab = LAB1.read_text()
    code_lines = [line for line in FIRST_CELL.splitlines() if line and "print" not in line]
    assert code_lines
    for line in code_lines:
        assert line in lab.splitlines(), line


def test_event_lines_are_parsed_and_others_ignored():
    queued = {"progress": 5, "workshop_phase": "queued", "queue_position": 3}
    assert parse_event(f"data: {json.dumps(queued)}\n".encode()) == queued
    assert parse_event('data:{"ready": true}') == {"ready": True}
    assert parse_event(b": keep-alive\n") is None
    assert parse_event(b"\n") is None
    assert parse_event("data: not json") is None
    assert parse_event("data: [1, 2]") is None


def test_phases_come_from_the_events_fields_and_tolerate_their_absence():
    assert event_phase({"workshop_phase": "queued", "queue_position": 1}) == "queued"
    assert event_phase({"workshop_phase": "starting", "queue_wait": 3.5}) == "starting"
    assert event_phase({"progress": 50, "message": "Pulling"}) is None
    assert event_phase({"progress": 100, "ready": True}) == "ready"
    assert event_phase({"failed": True, "message": "no"}) == "failed"


@pytest.mark.parametrize("values", [[3.0], [1.0, 2.0], [5, 1, 4, 2, 3], list(range(30))])
def test_percentiles_match_numpy(values):
    for fraction in (0.5, 0.95, 1.0):
        assert percentile(values, fraction) == pytest.approx(
            numpy.percentile(values, fraction * 100)
        )
    assert percentile([], 0.5) is None


def test_memory_is_what_docker_stats_shows_on_cgroup_v1_and_v2():
    v1 = {"memory_stats": {"usage": 150_000_000, "stats": {"total_inactive_file": 30_000_000}}}
    v2 = {"memory_stats": {"usage": 150_000_000, "stats": {"inactive_file": 40_000_000}}}
    assert stats_memory(v1) == 120_000_000
    assert stats_memory(v2) == 110_000_000
    assert stats_memory({"memory_stats": {"usage": 5, "stats": {}}}) == 5
    assert stats_memory({"memory_stats": {}}) is None
    assert stats_cpu_seconds({"cpu_stats": {"cpu_usage": {"total_usage": 4_700_000_000}}}) == 4.7
    assert stats_cpu_seconds({}) is None


def test_the_hubs_processes_are_recognised_by_their_command_line():
    assert process_role(["/opt/venv/bin/python3", "/opt/venv/bin/jupyterhub", "-f", "x"]) == "hub"
    assert process_role(["jupyterhub", "-f", "/srv/jupyterhub/jupyterhub_config.py"]) == "hub"
    assert process_role(["node", "/usr/bin/configurable-http-proxy", "--ip", "::"]) == "proxy"
    assert process_role(["tini", "-g", "--", "jupyterhub"]) is None
    assert process_role(["/opt/venv/bin/python3", "-m", "jupyterhub_idle_culler"]) is None
    assert process_role(["/opt/venv/bin/python3", "/opt/venv/bin/workshop-hub"]) is None


def test_this_process_cpu_and_memory_are_read_from_proc():
    cpu, rss = process_usage(os.getpid())
    assert cpu > 0 and rss > 10_000_000
    assert process_usage(2**22 + 1) is None  # above the kernel's largest pid


def test_cpu_model_comes_from_cpuinfo():
    assert cpu_model(Path("/proc/cpuinfo").read_text()) != "unknown"
    assert cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    assert cpu_model("") == "unknown"


def test_the_live_counter():
    phases = ["ready", "done", "starting", "queued", "queued", "logging in", "failed"]
    assert counter_line(phases) == (
        "2/7 ready (1 ran the cell), 1 starting, 2 queued, 1 logging in, 1 failed"
    )


def _record(name, ready_at, queue_wait=0.0, failure=None):
    return AttendeeRecord(
        name,
        phase="failed" if failure else "done",
        login_s=0.2,
        queue_wait_s=queue_wait,
        server_start_s=ready_at - 0.3 - queue_wait,
        login_to_ready_s=ready_at - 0.1,
        first_cell_s=3.0,
        container_cpu_s=2.5,
        memory_idle_bytes=110_000_000,
        memory_torch_bytes=210_000_000,
        login_at=0.1,
        spawn_at=0.3,
        ready_at=ready_at,
        cell_done_at=None if failure else ready_at + 3.0,
        failed_at=ready_at + 1 if failure else None,
        failure=failure,
    )


def test_timeline_bars_follow_the_phases():
    record = _record("rehearsal-abcd-01", ready_at=10.3, queue_wait=4.0)
    assert timeline_segments(record) == [
        ("login", 0.1, 0.3),
        ("queued", 0.3, 4.3),
        ("starting", 4.3, 10.3),
        ("ready → cell done", 10.3, 13.3),
    ]
    refused = AttendeeRecord("rehearsal-abcd-02", login_at=0.1, failed_at=0.5, failure="no")
    assert timeline_segments(refused) == [("login", 0.1, 0.5)]


def test_report_has_every_metric_with_floor_ratio_and_failures_apart():
    records = [
        _record("rehearsal-abcd-01", ready_at=5.0),
        _record("rehearsal-abcd-02", ready_at=9.0, queue_wait=4.0),
        _record("rehearsal-abcd-03", ready_at=7.0, failure="the spawn failed"),
    ]
    usage = {"hub_cpu_s": 1.5, "hub_rss_bytes": 150_000_000, "proxy_rss_bytes": 50_000_000}
    report = build_report(records, FLOORS, usage, HOST)
    assert set(report["metrics"]) == {metric.field for metric in METRICS}
    login_to_ready = report["metrics"]["login_to_ready_s"]
    # Only the two that succeeded count; login → ready is compared with the bare start.
    assert login_to_ready["count"] == 2
    assert login_to_ready["p50"] == pytest.approx(6.9)
    assert login_to_ready["max"] == pytest.approx(8.9)
    assert login_to_ready["p50_ratio"] == pytest.approx(6.9 / 2.0)
    assert report["metrics"]["queue_wait_s"]["floor"] is None
    assert report["metrics"]["queue_wait_s"]["p50_ratio"] is None
    assert report["metrics"]["memory_idle_bytes"]["p50"] == pytest.approx(110e6 / 2**20)  # MiB
    assert report["metrics"]["memory_idle_bytes"]["p50_ratio"] == pytest.approx(1.1)
    assert report["hub"]["cpu_s_per_spawn"] == pytest.approx(0.5)
    assert report["metrics"]["total_cpu_s"]["p50"] == pytest.approx(3.0)
    # CPU floor: N × one spawn's CPU-s ÷ cores = 3 × 3.0 / 2.
    assert report["cpu_floor_s"] == pytest.approx(4.5)
    assert report["makespan_s"] == 9.0
    assert report["makespan_ratio"] == pytest.approx(2.0)
    assert report["first_ready_s"] == 5.0
    assert report["failures"] == [{"name": "rehearsal-abcd-03", "message": "the spawn failed"}]
    assert len(report["records"]) == 3
    json.dumps(report)

    table = render_table(report)
    for text in ("p50/floor", "login → ready (s)", "3.45x", "n/a", "spawn concurrency: 2"):
        assert text in table
    assert "rehearsal-abcd-03: the spawn failed" in table


def test_a_run_where_nobody_got_ready_still_reports():
    refused = AttendeeRecord("rehearsal-abcd-01", login_at=0.1, failed_at=0.5, failure="no")
    report = build_report(
        [refused], FLOORS, {"hub_cpu_s": None}, {**HOST, "spawn_concurrency": None}
    )
    assert report["makespan_s"] is None and report["makespan_ratio"] is None
    assert report["metrics"]["login_s"]["p50"] is None
    assert "not reported" in render_table(report)


def test_the_timeline_is_a_png(tmp_path):
    records = [
        _record("rehearsal-abcd-01", ready_at=5.0),
        _record("rehearsal-abcd-02", ready_at=9.0, queue_wait=4.0, failure="cell failed"),
    ]
    draw_timeline(records, 9.0, tmp_path / "timeline.png")
    assert (tmp_path / "timeline.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_attendees_beyond_the_room_or_200_are_refused():
    settings = load_settings({"WORKSHOP_MEM_LIMIT": "2G"})
    info = {"MemTotal": 24 * GiB, "NCPU": 2}
    check_request(settings, 11, 900, info)
    for count in (0, 12):
        with pytest.raises(RehearsalError, match="between 1 and 11"):
            check_request(settings, count, 900, info)
    big = {"MemTotal": 2000 * GiB, "NCPU": 64}
    with pytest.raises(RehearsalError, match="between 1 and 200"):
        check_request(settings, 201, 900, big)
    with pytest.raises(RehearsalError, match="--timeout"):
        check_request(settings, 2, 10, info)


def test_a_hub_that_does_not_answer_is_named():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe is closed.
    with pytest.raises(RehearsalError, match="does not answer at http://127.0.0.1"):
        check_hub(f"http://127.0.0.1:{port}")


def test_the_cell_output_is_what_torch_prints():
    namespace = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(FIRST_CELL, namespace)
    assert printed.getvalue().strip() == FIRST_CELL_OUTPUT


def test_docker_names_are_the_hubs_escaped_ones():
    assert docker_names("pytorch-workshop", "rehearsal-abcd-01") == (
        "pytorch-workshop-rehearsal-2dabcd-2d01",
        "pytorch-workshop-user-rehearsal-2dabcd-2d01",
    )


def test_at_the_timeout_whoever_has_not_finished_failed():
    settings = load_settings({})
    burst = Burst(settings, rehearsal_names(3, "abcd"), "room-code-1", None, "http://x", print)
    done, starting, refused = burst.records
    done.phase, starting.phase = "done", "starting"
    refused.phase, refused.failure = "failed", "login refused"
    burst.give_up("not done within --timeout 900 s")
    assert done.failure is None
    assert starting.failure == "not done within --timeout 900 s" and starting.phase == "failed"
    assert refused.failure == "login refused"


def test_the_two_rooms_are_compared_side_by_side_and_the_warming_is_shown():
    walk_in = build_report(
        [_record("rehearsal-abcd-01", ready_at=9.0, queue_wait=4.0)],
        FLOORS,
        {"hub_cpu_s": 1.0},
        HOST,
    )
    warm = build_report(
        [_record("rehearsal-ef01-01", ready_at=1.1)], FLOORS, {"hub_cpu_s": 0.1}, HOST
    )
    warm["warming"] = {"seconds": 12.0, "ready": 1, "failed": {}, "cpu_floor_s": 6.0, "ratio": 2.0}
    comparison = render_comparison({"walk-in": walk_in, "warm": warm})
    assert "walk-in" in comparison.splitlines()[0] and "warm" in comparison.splitlines()[0]
    login_to_ready = next(line for line in comparison.splitlines() if "login → ready" in line)
    assert "8.90 (8.90) s" in login_to_ready and "1.00 (1.00) s" in login_to_ready
    assert "warming (ahead of time):  12.0 s for 1 servers, 2.00x" in render_table(warm)
    assert "warming" not in render_table(walk_in)


@pytest.mark.parametrize(
    ("given", "rooms"),
    [("walk-in,warm", ("walk-in", "warm")), ("warm", ("warm",)), (" warm , warm ", ("warm",))],
)
def test_the_rooms_option_takes_known_rooms_only(given, rooms):
    assert _rooms(given) == rooms


@pytest.mark.parametrize("given", ["", "cold", "warm,cold"])
def test_an_unknown_room_is_refused_with_the_choices(given):
    with pytest.raises(argparse.ArgumentTypeError, match="walk-in, warm"):
        _rooms(given)


def test_the_warming_is_held_against_the_walk_in_rooms_cost_of_a_spawn():
    walk_in = build_report(
        [_record("rehearsal-abcd-01", ready_at=9.0)], FLOORS, {"hub_cpu_s": 1.0}, HOST
    )
    warm = build_report([_record("rehearsal-ef01-01", ready_at=1.1)], FLOORS, {}, HOST)
    warm["warming"] = {"seconds": 9.0, "ready": 1, "failed": {}}
    compare_warming_with_spawns({"walk-in": walk_in, "warm": warm}, 3, HOST)
    # 3 attendees × the walk-in room's 3.5 CPU-s per spawn (2.5 its container's, 1.0 the
    # hub's) ÷ 2 cores = 5.25 s.
    assert walk_in["metrics"]["total_cpu_s"]["p50"] == pytest.approx(3.5)
    assert warm["warming"]["cpu_floor_s"] == pytest.approx(5.25)
    assert warm["warming"]["ratio"] == pytest.approx(9.0 / 5.25)


def test_the_host_is_busy_by_its_non_idle_ticks():
    # user nice system idle iowait irq softirq steal
    busy, total = host_busy_cores("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n")
    assert (busy, total) == (150, 1000)


def test_a_pages_message_is_the_text_a_person_reads():
    login = '<form><p class="login_error">That name isn&#39;t <b>yours</b>.</p></form>'
    assert page_message(login) == "That name isn't yours ."
    spawn = '<div class="spawn-error-msg alert">Too many\n  servers &amp; a line</p>'
    assert page_message(spawn) == "Too many servers & a line"
    # A long message is read to its end: its last words say what to do.
    advice = "x " * 200 + "Start on CPU instead."
    assert page_message(f'<p class="login_error">{advice}</p>').endswith("Start on CPU instead.")
    assert page_message("<html><body>" + "x " * 400 + "end</body></html>").endswith("x x end")
