"""What the Help tab's server side (workshop_help) adds to an attendee's server start.

    docker run --rm --network none -v "$PWD/scripts:/scripts:ro" IMAGE \\
        python /scripts/benchmark_server_start.py [--rounds 5]

Starts `jupyter lab` in this environment (the lab image's, run inside it) ROUNDS times with the
extension on and ROUNDS times with it off, in turns so both see the same machine, and times
each start until the server answers `/api/status` on loopback. Prints the medians and their
ratio. The page side (the prebuilt JupyterLab extension) is a file the browser loads once; its
size is printed too.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

EXTENSION = "workshop_help"
STARTS_WITHIN_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_start(enabled: bool, root: Path) -> float:
    """Seconds from launching `jupyter lab` until /api/status answers."""
    port, token = free_port(), "benchmark"
    began = time.perf_counter()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--ServerApp.port={port}",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.root_dir={root}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.jpserver_extensions={EXTENSION}={enabled}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - began < STARTS_WITHIN_S:
            try:
                url = f"http://127.0.0.1:{port}/api/status?token={token}"
                with urllib.request.urlopen(url, timeout=2):
                    return time.perf_counter() - began
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        raise SystemExit(f"jupyter lab did not answer within {STARTS_WITHIN_S} s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def prebuilt_size() -> int:
    """Bytes of the prebuilt page-side extension, wherever this environment keeps it."""
    folder = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "workshop-help"
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="starts each way")
    args = parser.parse_args(argv)
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as root:
        os.environ.setdefault("JUPYTER_RUNTIME_DIR", str(Path(root) / "runtime"))
        one_start(True, Path(root))  # a first start warms the file cache for both
        for round_number in range(1, args.rounds + 1):
            for enabled in (True, False):
                times[enabled].append(one_start(enabled, Path(root)))
            print(
                f"  round {round_number}/{args.rounds}: with {times[True][-1]:.2f} s, "
                f"without {times[False][-1]:.2f} s",
                flush=True,
            )
    with_it, without = statistics.median(times[True]), statistics.median(times[False])
    print(
        f"server start with {EXTENSION}: median {with_it:.2f} s, without: {without:.2f} s "
        f"({with_it / without:.2f}x, {with_it - without:+.2f} s) over {args.rounds} starts each"
    )
    print(f"page-side extension: {prebuilt_size() / 1024:.0f} KiB, loaded once by the browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
