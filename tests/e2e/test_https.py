"""HTTPS for a hosted hub, for real and offline; plain HTTP stays on this host.

The ACME path runs Let's Encrypt's test server (Debian's pebble) on this machine and points
the proxy at it: pebble validates the test domain over HTTP-01 or TLS-ALPN-01 through the
ports the proxy publishes, exactly as Let's Encrypt would, and clients check the chain
against pebble's root. The domain resolves to 127.0.0.1 through /etc/hosts for the module.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import statistics
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from .conftest import MAIN_STACK_LIMITS
from .hub_client import Attendee
from .stack import ACCESS_CODE_OF_TESTS, ADMIN_PASSWORD_OF_TESTS, HubStack, free_port, progress

DOMAIN = "workshop-hub.test"
HOSTS_FILE = Path("/etc/hosts")
# Only on an interface the test creates (198.18.0.0/15 is for benchmarking): traffic to it
# never leaves this machine.
TEST_ADDRESS = "198.18.77.1"
SESSION_COOKIES = ("jupyterhub-hub-login", "jupyterhub-session-id")
TIMING_ROUNDS = 5


def run(*command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


@contextmanager
def hosts_entry(name: str, address: str = "127.0.0.1"):
    """`name` resolves to `address` for every client on this machine, until the block ends."""
    line = f"{address} {name}  # tests/e2e/test_https.py pid {os.getpid()}\n"
    with HOSTS_FILE.open("a") as hosts:
        hosts.write(line)
    try:
        yield
    finally:
        # Written in place: /etc/hosts may be a bind mount that cannot be replaced.
        HOSTS_FILE.write_text(HOSTS_FILE.read_text().replace(line, ""))


@contextmanager
def address_on_a_test_interface(address: str):
    """`address` on a veth pair this test creates (the dummy driver is not always there),
    removed afterwards: an address of this host other than loopback."""
    interface, peer = f"wsv{os.getpid()}"[:15], f"wsp{os.getpid()}"[:15]
    run("ip", "link", "add", interface, "type", "veth", "peer", "name", peer)
    try:
        run("ip", "addr", "add", f"{address}/32", "dev", interface)
        run("ip", "link", "set", interface, "up")
        run("ip", "link", "set", peer, "up")
        yield address
    finally:
        run("ip", "link", "delete", interface)


def self_signed_certificate(directory: Path, name: str, alt_names: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    run(
        *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
        *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"),
        *("-addext", f"subjectAltName={alt_names}"),
    )
    return cert, key


def wait_for(what: str, check, timeout: float, on_timeout=lambda: ""):
    """Poll `check()` until it returns something true; say what is awaited while it lasts."""
    started = time.monotonic()
    last_said = started
    while time.monotonic() - started < timeout:
        try:
            result = check()
        except (requests.RequestException, OSError):
            result = None
        if result:
            return result
        if time.monotonic() - last_said > 15:
            progress(f"still waiting for {what} ({time.monotonic() - started:.0f} s)")
            last_said = time.monotonic()
        time.sleep(1)
    raise TimeoutError(f"no {what} after {timeout:.0f} s\n{on_timeout()}")


class LocalAcme:
    """pebble and its DNS server, started and stopped by the test, listening only on
    `listen_ip` (the stack's bridge, where the proxy reaches it) and on loopback."""

    def __init__(self, workdir: Path, listen_ip: str, http_port: int, https_port: int):
        self.workdir = workdir
        self.listen_ip = listen_ip
        self.http_port = http_port
        self.https_port = https_port
        self.processes: list[subprocess.Popen] = []

    def _start(self, name: str, *command: str, env: dict[str, str] | None = None) -> None:
        log = open(self.workdir / f"{name}.log", "w")
        self.processes.append(
            subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        )

    def logs(self) -> str:
        return "".join(
            f"--- {path.name}\n{path.read_text()[-3000:]}" for path in self.workdir.glob("*.log")
        )

    def __enter__(self) -> LocalAcme:
        # pebble serves its API with a certificate of its own, which the proxy must trust.
        self.tls_cert, tls_key = self_signed_certificate(
            self.workdir, "pebble-api", f"IP:{self.listen_ip},IP:127.0.0.1"
        )
        dns_port, challenge_management, management = free_port(), free_port(), free_port()
        self._start(
            "challtestsrv",
            "pebble-challtestsrv",
            *("-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""),
            *(
                "-dns01",
                f"127.0.0.1:{dns_port}",
                "-management",
                f"127.0.0.1:{challenge_management}",
            ),
            *("-http01", "", "-https01", "", "-tlsalpn01", ""),
        )
        api_port = free_port()
        config = {
            "pebble": {
                "listenAddress": f"{self.listen_ip}:{api_port}",
                "managementListenAddress": f"127.0.0.1:{management}",
                "certificate": str(self.tls_cert),
                "privateKey": str(tls_key),
                # Where pebble validates challenges: the ports the proxy is published on.
                "httpPort": self.http_port,
                "tlsPort": self.https_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        (self.workdir / "pebble.json").write_text(json.dumps(config))
        self._start(
            "pebble",
            *("pebble", "-config", str(self.workdir / "pebble.json")),
            *("-dnsserver", f"127.0.0.1:{dns_port}"),
            env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
        )
        self.directory = f"https://{self.listen_ip}:{api_port}/dir"
        root = wait_for(
            "pebble's root certificate",
            lambda: (
                requests.get(
                    f"https://127.0.0.1:{management}/roots/0", verify=str(self.tls_cert), timeout=5
                ).text
            ),
            timeout=60,
            on_timeout=self.logs,
        )
        # What a browser would trust: the root of the certificates pebble issues.
        self.root = self.workdir / "pebble-root.pem"
        self.root.write_text(root)
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)


@dataclass
class HttpsHub:
    stack: HubStack
    url: str
    http_url: str
    root: str
    https_port: int
    # The address the proxy sees attendees on this machine come from.
    gateway: str


@pytest.fixture(scope="module")
def https_hub(lab_images, tmp_path_factory):
    """A stack with WORKSHOP_DOMAIN set and its proxy holding a certificate from pebble."""
    http_port, https_port = free_port(), free_port()
    stack = HubStack(
        COMPOSE_PROFILES="https",
        WORKSHOP_DOMAIN=DOMAIN,
        WORKSHOP_HTTP_PORT=str(http_port),
        WORKSHOP_HTTPS_PORT=str(https_port),
        WORKSHOP_ACCESS_CODE=ACCESS_CODE_OF_TESTS,
        WORKSHOP_ADMIN_PASSWORD=ADMIN_PASSWORD_OF_TESTS,
        **MAIN_STACK_LIMITS,
    )
    url = f"https://{DOMAIN}:{https_port}"
    try:
        with hosts_entry(DOMAIN):
            stack.up()
            # pebble listens where the proxy container reaches this host: the gateway of the
            # stack's own network. It runs before the proxy, which backs off after a failure.
            network = stack.docker.networks.get(f"{stack.project}-network")
            gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
            workdir = tmp_path_factory.mktemp("acme")
            with LocalAcme(workdir, gateway, http_port, https_port) as acme:
                stack.env.update(
                    WORKSHOP_ACME_CA=acme.directory, WORKSHOP_ACME_CA_ROOT=str(acme.tls_cert)
                )
                stack.start("proxy")
                wait_for(
                    f"a certificate for {DOMAIN} from pebble",
                    lambda: requests.get(f"{url}/hub/health", verify=str(acme.root), timeout=10).ok,
                    timeout=240,
                    on_timeout=lambda: stack.logs("proxy")[-4000:] + acme.logs(),
                )
                progress(f"proxy serves {url} with a certificate from pebble")
                http_url = f"http://{DOMAIN}:{http_port}"
                yield HttpsHub(stack, url, http_url, str(acme.root), https_port, gateway)
    finally:
        if os.environ.get("WORKSHOP_KEEP_TEST_STACKS") != "1":
            stack.down()


def curl(*args: str) -> subprocess.CompletedProcess:
    """curl as a browser-grade TLS client: full chain and host name checks."""
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "20", *args],
        capture_output=True,
        text=True,
    )


def issuer_of(host: str, port: int, ca_file: str, server_name: str) -> str:
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection((host, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            issuer = dict(item[0] for item in tls.getpeercert()["issuer"])
    return issuer["commonName"]


def service_container(stack: HubStack, service: str):
    [container] = stack.docker.containers.list(
        filters={
            "label": [
                f"com.docker.compose.project={stack.project}",
                f"com.docker.compose.service={service}",
                "com.docker.compose.oneoff=False",
            ]
        }
    )
    return container


def proxy_address(stack: HubStack) -> str:
    container = service_container(stack, "proxy")
    return container.attrs["NetworkSettings"]["Networks"][f"{stack.project}-network"]["IPAddress"]


def test_a_browser_grade_client_gets_a_valid_chain_from_the_acme_server(https_hub):
    health = f"{https_hub.url}/hub/health"
    verified = curl("--cacert", https_hub.root, "-o", "/dev/null", "-w", "%{http_code}", health)
    assert verified.returncode == 0 and verified.stdout == "200", verified.stderr
    assert requests.get(health, verify=https_hub.root, timeout=10).status_code == 200
    assert "Pebble" in issuer_of("127.0.0.1", https_hub.https_port, https_hub.root, DOMAIN)
    # The check is real: without pebble's root the same chain is refused.
    untrusted = curl("-o", "/dev/null", health)
    assert untrusted.returncode == 60, (untrusted.returncode, untrusted.stderr)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(health, timeout=10)


def test_plain_http_redirects_to_https(https_hub):
    response = requests.get(
        f"{https_hub.http_url}/hub/login?next=%2Fhub%2F", allow_redirects=False, timeout=10
    )
    assert response.status_code == 308
    assert response.headers["Location"] == f"{https_hub.url}/hub/login?next=%2Fhub%2F"


def test_https_responses_carry_hsts(https_hub):
    response = requests.get(f"{https_hub.url}/hub/login", verify=https_hub.root, timeout=10)
    assert response.status_code == 200
    assert "max-age=" in response.headers["Strict-Transport-Security"]


def test_the_hub_says_it_serves_https_and_keeps_plain_http_on_this_host(https_hub):
    logs = https_hub.stack.logs()
    assert f"serving HTTPS for {DOMAIN} through the proxy" in logs
    assert f"plain HTTP on 127.0.0.1:{https_hub.stack.port} for this host" in logs


def test_login_spawn_and_kernel_over_https_with_secure_cookies(https_hub):
    grace = Attendee(https_hub.url, "grace", ca_file=https_hub.root)
    assert grace.login(ACCESS_CODE_OF_TESTS).status_code == 200
    cookies = {cookie.name: cookie for cookie in grace.http.cookies}
    for name in SESSION_COOKIES:
        assert cookies[name].secure, f"{name} is not marked Secure over HTTPS"
    grace.wait_until_ready()
    assert grace.open_lab().status_code == 200
    result = grace.run_code("print(5*4)")
    assert (result.stdout, result.error) == ("20\n", None)
    # The hub logs the address the proxy saw (X-Real-IP), not the proxy's own.
    proxy_ip = proxy_address(https_hub.stack)
    login_lines = [line for line in https_hub.stack.logs().splitlines() if "/hub/login" in line]
    assert any(f"(grace@{https_hub.gateway})" in line for line in login_lines), login_lines[-5:]
    assert not any(f"@{proxy_ip})" in line for line in login_lines), login_lines[-5:]


def test_the_proxy_refuses_bodies_past_its_limit_before_anything_reads_them(https_hub, tmp_path):
    """An attendee's own server reads a whole body before it answers: the proxy stops one
    past its limit on the way."""
    lovelace = Attendee(https_hub.url, "lovelace", ca_file=https_hub.root)
    assert lovelace.login(ACCESS_CODE_OF_TESTS).status_code == 200
    lovelace.wait_until_ready()
    assert lovelace.open_lab().status_code == 200
    cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in lovelace.http.cookies)

    def put(megabytes: int) -> str:
        body = tmp_path / f"{megabytes}M.bin"
        body.write_bytes(b"x" * megabytes * 1024**2)
        sent = curl(
            "--cacert", https_hub.root, "-X", "PUT", "--data-binary", f"@{body}",
            "-H", f"Cookie: {cookies}", "-H", f"X-XSRFToken: {lovelace._server_xsrf()}",
            "-o", "/dev/null", "-w", "%{http_code}", lovelace.user_url("api/contents/big.bin"),
        )  # fmt: skip
        progress(f"PUT of {megabytes} MiB: HTTP {sent.stdout} {sent.stderr.strip()}")
        return sent.stdout

    def refusals() -> list[str]:
        log = service_container(https_hub.stack, "proxy").logs().decode()
        return [
            line for line in log.splitlines() if "HTTP 413: http: request body too large" in line
        ]

    # The control: a body within the limit reaches her server, which reads it and finds no
    # JSON in it (400), and the proxy refuses nothing.
    assert put(4) == "400" and refusals() == []
    # The proxy answers 413 and ends the stream; over HTTP/2 curl may see only the reset.
    assert put(70) in ("413", "000")
    [refusal] = refusals()
    assert "/user/lovelace/api/contents/big.bin" in refusal


def test_cookies_on_the_plain_loopback_port_are_not_secure(https_hub):
    """The control of the test above: the Secure flag comes from the HTTPS route."""
    direct = Attendee(https_hub.stack.url, "hopper")
    assert direct.login(ACCESS_CODE_OF_TESTS).status_code == 200
    cookies = {cookie.name: cookie for cookie in direct.http.cookies}
    assert not any(cookies[name].secure for name in SESSION_COOKIES)
    direct.wait_until_ready()
    direct.stop_server()


def login_to_ready(url: str, name: str, ca_file: str | None) -> tuple[float, float]:
    """Seconds from pressing "log in" to the server being ready, and to JupyterLab loaded."""
    attendee = Attendee(url, name, ca_file=ca_file)
    started = time.monotonic()
    assert attendee.login(ACCESS_CODE_OF_TESTS).status_code == 200
    attendee.wait_until_ready()
    ready = time.monotonic() - started
    assert attendee.open_lab().status_code == 200
    lab = time.monotonic() - started
    attendee.stop_server()
    return ready, lab


def request_milliseconds(url: str, ca_file: str | None, count: int = 30) -> float:
    """Median time of one small request on a kept-alive connection."""
    session = requests.Session()
    verify = ca_file or True
    session.get(f"{url}/hub/health", verify=verify, timeout=10)  # connect (and TLS handshake)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        assert session.get(f"{url}/hub/health", verify=verify, timeout=10).status_code == 200
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def test_cost_of_the_proxy_on_login_to_ready(https_hub):
    """Same stack, same run: attendees through the HTTPS proxy and on the loopback port."""
    routes = {
        "https proxy": (https_hub.url, https_hub.root),
        "loopback": (https_hub.stack.url, None),
    }
    timings: dict[str, list[tuple[float, float]]] = {route: [] for route in routes}
    for round_number in range(TIMING_ROUNDS):
        # Alternated, so load from anything else on the machine falls on both routes.
        for route, (url, ca_file) in routes.items():
            name = f"timing-{route.split()[0]}-{round_number}"
            timings[route].append(login_to_ready(url, name, ca_file))
    latency = {route: request_milliseconds(*target) for route, target in routes.items()}
    report = ["login -> server ready / -> JupyterLab loaded (s), median request (ms):"]
    for route, samples in timings.items():
        ready = statistics.median(sample[0] for sample in samples)
        lab = statistics.median(sample[1] for sample in samples)
        runs = ", ".join(f"{sample[0]:.1f}" for sample in samples)
        report.append(
            f"  {route:12} ready {ready:5.1f}  lab {lab:5.1f}  request {latency[route]:5.1f} ms"
            f"  (ready per attendee: {runs})"
        )
    progress("\n".join(report))
    ready_https = statistics.median(sample[0] for sample in timings["https proxy"])
    ready_direct = statistics.median(sample[0] for sample in timings["loopback"])
    # Generous: the proxy adds milliseconds per request; seconds would mean a broken route
    # (buffered progress events, say).
    assert ready_https < 2 * ready_direct + 5, report


def test_certificates_are_kept_across_proxy_restarts(https_hub):
    """The certificate and ACME account live in the proxy-data volume: a restart (or an
    upgrade) asks the CA for nothing, so Let's Encrypt's rate limits are never reached."""
    proxy = service_container(https_hub.stack, "proxy")
    stored = proxy.exec_run(["find", "/data/caddy/certificates", "-name", "*.crt"]).output.decode()
    assert f"{DOMAIN}.crt" in stored, stored
    restarted_at = int(time.time())
    https_hub.stack.compose("restart", "proxy")
    wait_for(
        "the restarted proxy",
        lambda: requests.get(f"{https_hub.url}/hub/health", verify=https_hub.root, timeout=10).ok,
        timeout=60,
    )
    since_restart = proxy.logs(since=restarted_at).decode()
    assert "workshop proxy: HTTPS for" in since_restart
    assert "obtaining certificate" not in since_restart, since_restart[-3000:]


def venue_certificate(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A venue's own CA and a certificate it signed for `name`: (CA, certificate, key)."""
    ca_cert, ca_key = self_signed_certificate(directory, "venue-ca", "DNS:venue-ca.test")
    cert, key, request = directory / "hub.pem", directory / "hub.key", directory / "hub.csr"
    (directory / "san.cnf").write_text(f"subjectAltName=DNS:{name}\n")
    run(
        *("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}"),
        *("-keyout", str(key), "-out", str(request)),
    )
    run(
        *("openssl", "x509", "-req", "-in", str(request), "-days", "2", "-out", str(cert)),
        *("-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial"),
        *("-extfile", str(directory / "san.cnf")),
    )
    key.chmod(0o600)  # as an organizer keeps it: readable by root only
    return ca_cert, cert, key


def test_the_organizers_own_certificate_is_served_without_acme(https_hub, tmp_path):
    """Mode 2: WORKSHOP_TLS_CERT and WORKSHOP_TLS_KEY, no domain, no ACME."""
    name = "venue-hub.test"
    ca_cert, cert, key = venue_certificate(tmp_path, name)
    http_port, https_port = free_port(), free_port()
    started = https_hub.stack.compose(
        *("run", "-d", "--service-ports", "--no-deps", "proxy"),
        env={
            "WORKSHOP_DOMAIN": "",
            "WORKSHOP_TLS_CERT": str(cert),
            "WORKSHOP_TLS_KEY": str(key),
            "WORKSHOP_HTTP_PORT": str(http_port),
            "WORKSHOP_HTTPS_PORT": str(https_port),
        },
    )
    container = https_hub.stack.docker.containers.get(started.stdout.strip().splitlines()[-1])
    health = f"https://{name}:{https_port}/hub/health"
    resolve = ("--resolve", f"{name}:{https_port}:127.0.0.1")

    def verified_status() -> str:
        result = curl(
            "--cacert", str(ca_cert), *resolve, "-o", "/dev/null", "-w", "%{http_code}", health
        )
        return result.stdout

    try:
        wait_for(
            "the proxy with the organizer's certificate",
            lambda: verified_status() == "200",
            timeout=60,
            on_timeout=lambda: container.logs().decode()[-3000:],
        )
        assert issuer_of("127.0.0.1", https_port, str(ca_cert), name) == "venue-ca"
        redirect = curl(
            *("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", f"Host: {name}"),
            f"http://127.0.0.1:{http_port}/hub/",
        )
        assert redirect.stdout == f"308 https://{name}:{https_port}/hub/"
        assert "HTTPS with the certificate of WORKSHOP_TLS_CERT" in container.logs().decode()
    finally:
        container.remove(force=True)


@pytest.mark.parametrize(
    "settings, says",
    [
        (
            {"WORKSHOP_DOMAIN": "", "WORKSHOP_TLS_CERT": "", "WORKSHOP_TLS_KEY": ""},
            "workshop proxy cannot start: set WORKSHOP_DOMAIN (automatic certificates",
        ),
        (
            {"WORKSHOP_DOMAIN": "", "WORKSHOP_TLS_CERT": "{tmp}/missing.pem"},
            "workshop proxy cannot start: WORKSHOP_TLS_CERT={tmp}/missing.pem: no such file",
        ),
    ],
    ids=["neither-domain-nor-certificate", "certificate-path-missing"],
)
def test_the_proxy_without_what_it_needs_stops_with_one_line(https_hub, tmp_path, settings, says):
    env = {name: value.format(tmp=tmp_path) for name, value in settings.items()}
    result = https_hub.stack.compose("run", "--rm", "--no-deps", "proxy", check=False, env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert says.format(tmp=tmp_path) in output, output
    assert len([line for line in output.splitlines() if "workshop proxy" in line]) == 1, output
    assert "Traceback" not in output and "caddy" not in output.lower(), output


def test_without_a_domain_the_hub_is_reachable_on_loopback_only(hub):
    container = service_container(hub, "hub")
    bindings = container.attrs["NetworkSettings"]["Ports"]["8000/tcp"]
    assert {binding["HostIp"] for binding in bindings} == {"127.0.0.1"}, bindings
    assert f"serving plain HTTP on 127.0.0.1:{hub.port} only" in hub.logs()
    with address_on_a_test_interface(TEST_ADDRESS) as address:
        # Control: a listener on every interface is reachable at the test address.
        with socket.create_server(("0.0.0.0", 0)) as control:
            socket.create_connection((address, control.getsockname()[1]), timeout=5).close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, hub.port), timeout=5)
    assert requests.get(f"http://127.0.0.1:{hub.port}/hub/health", timeout=10).status_code == 200
