"""compose -> JupyterHub -> one container per attendee -> a kernel that runs torch."""

from __future__ import annotations

import shutil
import time

import pytest

from workshop_hub.settings import parse_size

from .conftest import MAIN_STACK_LIMITS
from .hub_client import Attendee, page_message
from .stack import ROOT, progress


def test_the_log_says_where_the_secrets_are_but_never_shows_them(hub, access_code):
    logs = hub.logs()
    assert "workshop-hub access-code" in logs and "workshop-hub admin-password" in logs
    assert access_code not in logs
    admin_password = hub.hub_exec("workshop-hub", "admin-password").stdout.split()[-1]
    assert len(admin_password) >= 32 and admin_password not in logs


def test_attendee_runs_torch_in_a_real_kernel(ada):
    progress(f"login-to-ready spawn took {ada.spawn_seconds:.1f} s")
    result = ada.run_code(
        "import torch\n"
        "x = torch.arange(6.0).reshape(2, 3)\n"
        "print((x @ x.T).tolist(), torch.__version__)"
    )
    assert result.error is None
    assert result.stdout.startswith("[[5.0, 14.0], [14.0, 50.0]]")
    assert "2.13.0" in result.stdout


def test_the_seven_labs_are_in_the_work_folder(ada):
    listing = ada.api("GET", "contents/labs").json()
    notebooks = sorted(
        item["name"] for item in listing["content"] if item["name"].endswith(".ipynb")
    )
    assert len(notebooks) == 7, notebooks
    assert notebooks[0].startswith("01_") and notebooks[-1].startswith("07_")


def test_closing_a_lab_shuts_its_kernel_down(ada):
    # Seven labs' kernels, each holding torch (0.5 GB), do not fit in an attendee's 2 GB: a
    # lab's kernel goes with its tab (docker/lab/jupyterlab_overrides.json).
    tracker = "lab/api/settings/@jupyterlab/notebook-extension:tracker"
    settings = ada.http.get(ada.user_url(tracker), timeout=60)
    assert settings.status_code == 200, settings.text
    # The image's overrides.json sets the default; the attendee has set nothing of their own.
    tracker_settings = settings.json()
    default = tracker_settings["schema"]["properties"]["kernelShutdown"]["default"]
    assert tracker_settings["settings"].get("kernelShutdown", default) is True, tracker_settings


def test_attendee_container_is_unprivileged_and_limited(ada, hub):
    result = ada.run_code(
        "import os, pathlib\n"
        "def first(*paths):\n"
        "    for p in paths:\n"
        "        if pathlib.Path(p).exists():\n"
        "            return pathlib.Path(p).read_text().split()[0]\n"
        "st = os.statvfs('/dev/shm')\n"
        "memory = first('/sys/fs/cgroup/memory/memory.limit_in_bytes',"
        " '/sys/fs/cgroup/memory.max')\n"
        "pids = first('/sys/fs/cgroup/pids/pids.max', '/sys/fs/cgroup/pids.max')\n"
        "caps = open('/proc/self/status').read().split('CapEff:')[1].split()[0]\n"
        "print(os.getuid(), memory, pids, st.f_blocks * st.f_frsize, caps)"
    )
    assert result.error is None, result.error
    uid, memory, pids, shm, capabilities = result.stdout.split()
    assert uid == "1000"
    assert int(memory) == parse_size(MAIN_STACK_LIMITS["WORKSHOP_MEM_LIMIT"])
    assert pids == MAIN_STACK_LIMITS["WORKSHOP_PIDS_LIMIT"]
    assert int(shm) == parse_size(MAIN_STACK_LIMITS["WORKSHOP_SHM_SIZE"])
    assert int(capabilities, 16) == 0
    inspected = hub.attendee_container("ada").attrs["HostConfig"]
    assert inspected["SecurityOpt"] == ["no-new-privileges"]
    assert inspected["CpuQuota"] / inspected["CpuPeriod"] == float(
        MAIN_STACK_LIMITS["WORKSHOP_CPU_LIMIT"]
    )
    mounts = hub.attendee_container("ada").attrs["Mounts"]
    assert not any("docker.sock" in mount.get("Source", "") for mount in mounts)


def test_wrong_room_code_is_refused_with_a_clear_message(hub):
    response = Attendee(hub.url, "mallory").login("not-the-code")
    assert response.status_code == 403
    assert "room code is not right" in page_message(response.text)


@pytest.mark.parametrize("username", ["a/b", "<script>", "x;y", "   ", "Ada Lovelace", "é" * 3])
def test_odd_usernames_are_refused_with_the_rule(hub, access_code, username):
    response = Attendee(hub.url, "unused").login(access_code, username=username)
    assert response.status_code == 403
    assert "cannot be used" in page_message(response.text)
    assert "Traceback" not in response.text


def test_login_page_tells_attendees_what_to_type(hub):
    page = Attendee(hub.url, "x").http.get(f"{hub.url}/hub/login", timeout=30).text
    assert "room code your instructor shows" in page and 'name="room_code"' in page
    assert "choose your own password" in page.lower()
    assert "lowercase letters" in page


def test_another_attendee_cannot_reach_ada_server(hub, access_code, ada):
    bob = Attendee(hub.url, "bob")
    assert bob.login(access_code).status_code == 200
    response = bob.http.get(ada.user_url("api/contents/labs"), timeout=30)
    assert response.status_code == 403
    lab = bob.open_lab(owner="ada")
    assert lab.status_code == 403


def test_work_survives_hub_restart_and_server_restart(hub, ada):
    ada.api("PUT", "contents/notes.txt", json={"type": "file", "format": "text", "content": "kept"})
    container_before = hub.attendee_container("ada").id

    hub.restart_hub()
    assert hub.attendee_container("ada").id == container_before, "hub restart stopped the server"
    assert hub.attendee_container("ada").status == "running"
    assert ada.api("GET", "contents/notes.txt").json()["content"] == "kept"

    ada.stop_server()
    ada.start_server()
    ada.open_lab()
    assert ada.api("GET", "contents/notes.txt").json()["content"] == "kept"
    result = ada.run_code("print(open('/home/jovyan/work/notes.txt').read())")
    assert result.stdout.strip() == "kept"


def test_edited_lab_is_never_overwritten_on_restart(hub, ada):
    path = "contents/labs/01_intro_to_pytorch.ipynb"
    notebook = ada.api("GET", path).json()
    notebook["content"]["cells"].insert(
        0, {"cell_type": "markdown", "metadata": {}, "source": "my own notes"}
    )
    ada.api("PUT", path, json={"type": "notebook", "content": notebook["content"]})
    ada.stop_server()
    ada.start_server()
    ada.open_lab()
    assert ada.api("GET", path).json()["content"]["cells"][0]["source"] == "my own notes"


def test_a_killed_container_loses_no_work(hub, ada):
    ada.api(
        "PUT",
        "contents/before-kill.txt",
        json={"type": "file", "format": "text", "content": "safe"},
    )
    hub.attendee_container("ada").kill()
    # The hub notices at its next poll and lets the attendee start again.
    deadline = time.monotonic() + 120
    while ada.server_info()["servers"] and time.monotonic() < deadline:
        time.sleep(2)
    assert not ada.server_info()["servers"], "the hub did not notice the killed server"
    ada.start_server()
    ada.open_lab()
    assert ada.api("GET", "contents/before-kill.txt").json()["content"] == "safe"


def test_invalid_setting_stops_the_hub_with_one_clear_line(hub):
    result = hub.compose(
        "run", "--rm", "--no-deps", "-e", "WORKSHOP_MEM_LIMIT=lots", "hub", check=False
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "WORKSHOP_MEM_LIMIT='lots': use a size such as 512M, 2G or 1.5G" in output
    assert "Traceback" not in output


def test_a_misspelt_name_in_dot_env_stops_the_hub_with_the_right_name(hub, tmp_path):
    """An organizer's project folder: the compose file and a .env with a typo in it."""
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    (tmp_path / ".env").write_text("WORKSHOP_MEM_LIMTI=4G\n")
    result = hub.compose(
        "run", "--rm", "--no-deps", "hub", check=False, folder=tmp_path, timeout=120
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert ".env: WORKSHOP_MEM_LIMTI is not a setting: did you mean WORKSHOP_MEM_LIMIT?" in output
    assert "Traceback" not in output


def test_idle_servers_are_culled_and_their_files_kept(lab_images):
    from .stack import ACCESS_CODE_OF_TESTS, HubStack

    stack = HubStack(WORKSHOP_ACCESS_CODE=ACCESS_CODE_OF_TESTS, WORKSHOP_IDLE_TIMEOUT="20s")
    try:
        stack.up()
        cy = Attendee(stack.url, "cy")
        cy.login(ACCESS_CODE_OF_TESTS)
        cy.wait_until_ready()
        cy.open_lab()
        cy.api("PUT", "contents/kept.txt", json={"type": "file", "format": "text", "content": "x"})
        deadline = time.monotonic() + 120
        while cy.server_info()["servers"] and time.monotonic() < deadline:
            time.sleep(3)
        assert not cy.server_info()["servers"], "the idle server was not culled within 120 s"
        volume = f"{stack.project}-user-cy"
        assert stack.docker.volumes.get(volume)
        cy.start_server()
        cy.open_lab()
        assert cy.api("GET", "contents/kept.txt").json()["content"] == "x"
    finally:
        stack.down()
