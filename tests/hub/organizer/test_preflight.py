"""The preflight's rules, one verdict each, from settings and what a host has
(tests/e2e/test_preflight.py runs it in the real stack)."""

from __future__ import annotations

import datetime
import io
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from workshop_hub.organizer import preflight
from workshop_hub.organizer.preflight.facts import (
    FAIL,
    FREE,
    OURS,
    PASS,
    WARN,
    HostFacts,
    ImageCheck,
    TlsFiles,
    Verdict,
    lab_images,
)
from workshop_hub.organizer.preflight.host import file_mode, resolve
from workshop_hub.organizer.preflight.tls import certificate_covers
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


def by_check(found) -> dict[str, Verdict]:
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


def test_the_warm_rooms_servers_are_counted_in_the_rooms_memory():
    assert "warm room" not in by_check(preflight.verdicts(settings(), host()))
    fits = by_check(
        preflight.verdicts(settings(WORKSHOP_MAX_ATTENDEES="20"), host(rostered_waiting=12))
    )["warm room"]
    assert fits.status == PASS
    assert "12 × 2.0 GiB = 24.0 GiB" in fits.detail and "8 for walk-ins" in fits.detail
    # An auto room of 8 GB holds 3: a roster of 5 warm servers would not fit.
    crowded = by_check(preflight.verdicts(settings(), host(mem_total=8 * GiB, rostered_waiting=5)))
    assert crowded["warm room"].status == FAIL
    assert "workshop-hub roster remove" in crowded["warm room"].advice


def test_many_cores_promised_on_few_is_a_warning_not_a_blocker():
    found = preflight.verdicts(settings(WORKSHOP_MAX_ATTENDEES="30"), host(cores=8))
    assert by_check(found)["cores"].status == WARN  # 60 cores promised on 8
    assert not any(v.status == FAIL for v in found)


def test_too_little_disk_for_the_work_folders_fails():
    found = by_check(
        preflight.verdicts(settings(WORKSHOP_MAX_ATTENDEES="30"), host(disks_free=20 * GiB))
    )
    verdict = found["disk for work folders"]
    assert verdict.status == FAIL and "free 40.0 GiB" in verdict.advice  # 30 × 2 GB - 20 GB


def test_disk_for_the_room_but_not_for_every_name_is_a_warning():
    # 30 at once fit in 100 GB; the 60 names the room allows (twice the room) do not.
    found = by_check(
        preflight.verdicts(settings(WORKSHOP_MAX_ATTENDEES="30"), host(disks_free=100 * GiB))
    )
    assert found["disk for work folders"].status == PASS
    verdict = found["disk for every name"]
    assert verdict.status == WARN and "60 names" in verdict.detail
    assert "WORKSHOP_MAX_NAMES" in verdict.advice
    enough = preflight.verdicts(settings(WORKSHOP_MAX_ATTENDEES="30"), host(disks_free=130 * GiB))
    assert by_check(enough)["disk for every name"].status == PASS


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


@pytest.mark.parametrize("code", ["pytorchworkshop", "aaaaaaaaaaaa", "123456789012"])
def test_a_guessable_room_code_is_a_warning_with_how_to_make_a_good_one(code):
    verdict = by_check(preflight.verdicts(settings(WORKSHOP_ACCESS_CODE=code), host()))[
        "access code"
    ]
    assert verdict.status == WARN
    assert "WORKSHOP_ACCESS_CODE" in verdict.detail and "guess" in verdict.detail
    assert "unset WORKSHOP_ACCESS_CODE" in verdict.advice and "generates one" in verdict.advice


def test_a_room_code_with_no_pattern_passes():
    found = preflight.verdicts(settings(WORKSHOP_ACCESS_CODE="k7mq-2xfp-9hdn"), host())
    assert by_check(found)["access code"].status == PASS


@pytest.mark.parametrize(
    ("mode", "status", "says"),
    [
        (0o100644, WARN, "every user of this host may read it (mode 644)"),
        (0o100604, WARN, "every user"),
        (0o100640, PASS, "its group may read it (mode 640)"),
        (0o100600, PASS, "only its owner may read it (mode 600)"),
    ],
)
def test_who_may_read_dot_env(mode, status, says):
    verdict = by_check(preflight.verdicts(settings(), host(env_file_mode=mode)))[".env"]
    assert verdict.status == status and says in verdict.detail
    if mode & 0o044:
        assert "chmod 600 .env" in verdict.advice
    else:
        assert not verdict.advice


def test_without_a_dot_env_there_is_nothing_to_protect(tmp_path):
    assert ".env" not in by_check(preflight.verdicts(settings(), host(env_file_mode=None)))
    assert file_mode(tmp_path / ".env") is None
    (tmp_path / ".env").write_text("WORKSHOP_ACCESS_CODE=k7mq-2xfp-9hdn\n")
    (tmp_path / ".env").chmod(0o640)
    assert file_mode(tmp_path / ".env") & 0o777 == 0o640


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
    assert preflight.run(settings(), as_json=False, image_checks=False, out=out) == int(failed)
    last = out.getvalue().strip().splitlines()[-1]
    assert last == ("NOT READY: fix each FAIL above, then run this again." if failed else "ready")


def test_a_port_held_by_another_program_fails_and_the_hubs_own_passes():
    held = by_check(preflight.verdicts(settings(), host(port_holder="the container web")))
    assert held["port"].status == FAIL and "WORKSHOP_PORT" in held["port"].advice
    ours = by_check(preflight.verdicts(settings(), host(port_holder=OURS)))
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


def test_the_images_needed_follow_the_profiles_offered():
    assert list(lab_images(settings())) == ["WORKSHOP_CPU_IMAGE"]
    both = lab_images(settings(WORKSHOP_GPUS="0"))
    assert {setting: profile.slug for setting, profile in both.items()} == {
        "WORKSHOP_CPU_IMAGE": "cpu",
        "WORKSHOP_CUDA_IMAGE": "gpu",
    }
    assert list(lab_images(settings(WORKSHOP_GPUS="0", WORKSHOP_OFFER_CPU="false"))) == [
        "WORKSHOP_CUDA_IMAGE"
    ]
    # No GPU: the hub offers the CPU profile whatever WORKSHOP_OFFER_CPU says, so that image
    # is the one needed (the CUDA image was checked instead).
    assert list(lab_images(settings(WORKSHOP_OFFER_CPU="false"))) == ["WORKSHOP_CPU_IMAGE"]


# --- HTTPS: the domain ----------------------------------------------------------------------

HTTPS = {"WORKSHOP_DOMAIN": "hub.example.org"}


def test_a_domain_that_resolves_to_this_host_passes():
    facts = host(domain_addresses=["127.0.0.7"], host_addresses={"127.0.0.7", "127.0.0.2"})
    verdict = by_check(preflight.verdicts(settings(**HTTPS), facts))["domain"]
    assert verdict.status == PASS and "127.0.0.7 is here" in verdict.detail


def test_a_domain_elsewhere_warns_and_says_nat_cannot_be_seen():
    facts = host(domain_addresses=["127.0.0.9"], host_addresses={"127.0.0.2"})
    verdict = by_check(preflight.verdicts(settings(**HTTPS), facts))["domain"]
    assert verdict.status == WARN and "127.0.0.2" in verdict.detail
    assert "NAT" in verdict.advice and "cannot see a public address" in verdict.advice


def test_a_domain_that_does_not_resolve_fails_with_the_record_to_make():
    facts = host(domain_addresses=[], domain_error="[Errno -2] Name or service not known")
    verdict = by_check(preflight.verdicts(settings(**HTTPS), facts))["domain"]
    assert verdict.status == FAIL and "Name or service not known" in verdict.detail
    assert "DNS record" in verdict.advice and "getent hosts hub.example.org" in verdict.advice


def test_without_a_domain_nothing_is_looked_up():
    found = by_check(preflight.verdicts(settings(), host()))
    assert "domain" not in found and "ports for ACME" not in found


# --- HTTPS: the organizer's own certificate -------------------------------------------------

NOW = datetime.datetime(2026, 11, 27, 9, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def pem_pair(names=("hub.example.org",), starts=NOW - DAY, ends=NOW + 90 * DAY, key=None):
    """A self-signed certificate for `names` and its key, both PEM."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, names[0])])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(starts)
        .not_valid_after(ends)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def tls(cert: bytes | None, key: bytes | None, **errors) -> TlsFiles:
    return TlsFiles("/etc/ssl/hub.pem", "/etc/ssl/hub.key", cert, key, **errors)


def certificate_checks(files: TlsFiles, **values: str) -> dict[str, Verdict]:
    found = preflight.verdicts(
        settings(**{**HTTPS, **values}), host(own_certificate=True, tls=files), now=NOW
    )
    return {v.check: v for v in found if v.check.startswith("certificate")}


def test_a_good_certificate_passes_every_rule_and_says_how_long_it_lasts():
    found = certificate_checks(tls(*pem_pair()))
    assert {name: v.status for name, v in found.items()} == {
        "certificate files": PASS,
        "certificate and key": PASS,
        "certificate dates": PASS,
        "certificate names": PASS,
    }
    assert "90 days left" in found["certificate dates"].detail


def test_a_file_missing_on_the_host_fails_naming_it():
    found = certificate_checks(tls(None, b"", cert_error="no such file on this host"))
    assert list(found) == ["certificate files"]
    assert found["certificate files"].status == FAIL
    assert "WORKSHOP_TLS_CERT=/etc/ssl/hub.pem: no such file" in found["certificate files"].detail
    assert "WORKSHOP_TLS_CERT" in found["certificate files"].advice


def test_files_that_are_not_pem_fail():
    cert, key = pem_pair()
    assert certificate_checks(tls(b"junk", key))["certificate files"].status == FAIL
    bad_key = certificate_checks(tls(cert, b"junk"))["certificate files"]
    assert bad_key.status == FAIL and "private key" in bad_key.detail


def test_a_key_of_another_certificate_fails():
    cert, _ = pem_pair()
    _, other_key = pem_pair()
    verdict = certificate_checks(tls(cert, other_key))["certificate and key"]
    assert verdict.status == FAIL and "is not the key of /etc/ssl/hub.pem" in verdict.detail


@pytest.mark.parametrize(
    ("starts", "ends", "status", "says"),
    [
        (NOW - 100 * DAY, NOW - DAY, FAIL, "expired"),
        (NOW - 80 * DAY, NOW + 10 * DAY, WARN, "10 days left"),
        (NOW + DAY, NOW + 90 * DAY, FAIL, "not valid before"),
    ],
)
def test_certificate_dates(starts, ends, status, says):
    verdict = certificate_checks(tls(*pem_pair(starts=starts, ends=ends)))["certificate dates"]
    assert verdict.status == status and says in verdict.detail, verdict


def test_the_domain_must_be_among_the_certificates_names():
    other = certificate_checks(tls(*pem_pair(names=("www.example.org",))))["certificate names"]
    assert other.status == FAIL and "not WORKSHOP_DOMAIN=hub.example.org" in other.detail
    wildcard = certificate_checks(tls(*pem_pair(names=("*.example.org",))))["certificate names"]
    assert wildcard.status == PASS


def test_a_wildcard_stands_for_one_label_only():
    assert certificate_covers(["*.example.org"], "hub.example.org")
    assert not certificate_covers(["*.example.org"], "a.hub.example.org")
    assert not certificate_covers(["*.example.org"], "example.org")
    assert certificate_covers(["Hub.Example.org"], "hub.example.org.")


# --- HTTPS: ACME's ports --------------------------------------------------------------------


def test_acme_ports_free_or_the_proxys_pass_and_taken_ones_fail():
    free = host(acme_port_holders={"80": FREE, "443": OURS})
    verdict = by_check(preflight.verdicts(settings(**HTTPS), free))["ports for ACME"]
    assert verdict.status == PASS
    taken = host(acme_port_holders={"80": "the container nginx", "443": FREE})
    verdict = by_check(preflight.verdicts(settings(**HTTPS), taken))["ports for ACME"]
    assert verdict.status == FAIL and "port 80 is taken by the container nginx" in verdict.detail
    assert "WORKSHOP_TLS_CERT" in verdict.advice


# --- the lab images' own checks -------------------------------------------------------------


def image_check(*checks: tuple[str, str, str], **changes) -> ImageCheck:
    report = {
        "ok": all(verdict != FAIL for _, verdict, _ in checks),
        "seconds": 184.2,
        "checks": [{"name": n, "verdict": v, "note": note} for n, v, note in checks],
    }
    return ImageCheck("lab:cpu", report=report, **changes)


def image_verdict(run: ImageCheck) -> Verdict:
    return by_check(preflight.verdicts(settings(), host(image_checks=[run])))["image check lab:cpu"]


def test_an_image_whose_checks_pass_passes_with_the_counts():
    verdict = image_verdict(image_check(("system", "pass", "ok"), ("gpu", "skip", "no CUDA")))
    assert verdict.status == PASS
    assert verdict.detail.startswith("1 pass, 1 skip in 184 s") and "no network" in verdict.detail


def test_an_image_whose_checks_fail_names_them_and_what_to_do():
    run = image_check(
        ("system", "pass", "ok"),
        ("dataloader", "fail", "DataLoader failed: bus error. Give more (WORKSHOP_SHM_SIZE)"),
        ("lab:02_nets", "fail", "02_nets failed at cell 4\n--- cell source ---\nx = 1"),
    )
    verdict = image_verdict(run)
    assert verdict.status == FAIL and "2 fail" in verdict.detail
    assert "dataloader: DataLoader failed: bus error. Give more (WORKSHOP_SHM_SIZE)" in (
        verdict.advice
    )
    assert "lab:02_nets: 02_nets failed at cell 4" in verdict.advice
    assert "--- cell source ---" not in verdict.advice
    assert "python -m workshop_labs.smoke --only dataloader" in verdict.advice


def test_pins_that_differ_only_warn():
    verdict = image_verdict(image_check(("pins", "warn", "differs: torch 2.12 (pinned 2.13)")))
    assert verdict.status == WARN and "torch 2.12" in verdict.advice


def test_an_image_that_gave_no_report_fails_with_the_reason():
    run = ImageCheck(
        "lab:cpu",
        gpus=["0"],
        problem="a container on GPU 0 was refused",
        advice="install the NVIDIA Container Toolkit",
    )
    verdict = image_verdict(run)
    assert verdict.status == FAIL and verdict.detail == "a container on GPU 0 was refused"
    assert verdict.advice == "install the NVIDIA Container Toolkit"


def test_image_checks_left_out_give_no_verdict():
    found = preflight.verdicts(settings(), host())
    assert not any(v.check.startswith("image check") for v in found)


def test_a_name_resolves_to_its_addresses_and_a_bad_one_says_why():
    addresses, error = resolve("localhost")  # from /etc/hosts: no query leaves
    assert error is None and {"127.0.0.1", "::1"} & set(addresses)
    assert resolve("bad..name")[1]  # refused before any lookup
