"""Report each exercise check to the instructor's console, in the background.

In an attendee's server the hub sets WORKSHOP_CONSOLE_URL (the console service's API) and
JUPYTERHUB_API_TOKEN (the server's own token, which tells the hub whose check it was). A
check hands its result to a background thread and returns at once: the attendee never waits
for the network, and when the hub cannot be reached (a laptop run, the tests, a hub restart)
the report is dropped and the check works exactly as without it. When the console refuses
reports for coming too fast (429), the sender waits as asked, in the background too.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from http import HTTPStatus

CONSOLE_URL_ENV = "WORKSHOP_CONSOLE_URL"
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
SEND_TIMEOUT_SECONDS = 5
# Reports waiting to be sent; more than this means the console is away: drop, never block.
MAX_WAITING = 200
# The longest the sender waits when the console says "too many reports" (429, Retry-After).
MAX_PAUSE_SECONDS = 30.0

_waiting: queue.Queue = queue.Queue(maxsize=MAX_WAITING)
_sender: threading.Thread | None = None
_sender_lock = threading.Lock()


def console_request(path: str, **request: object) -> urllib.request.Request | None:
    """A request to the console's API at ``path`` with the server's token; None when this
    kernel runs on no hub (a laptop, the tests)."""
    base, token = os.environ.get(CONSOLE_URL_ENV), os.environ.get(TOKEN_ENV)
    if not base or not token:
        return None
    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    return urllib.request.Request(base.rstrip("/") + "/" + path, headers=headers, **request)


def report(lab: int, exercise: str, passed: bool, reason: str = "") -> bool:
    """Queue one check's result for the console; False when there is no console to tell."""
    body = json.dumps({"lab": lab, "exercise": exercise, "passed": passed, "reason": reason})
    request = console_request("progress", data=body.encode(), method="POST")
    if request is None:
        return False
    try:
        _waiting.put_nowait(request)
    except queue.Full:
        return False
    _ensure_sender()
    return True


def wait_until_sent(timeout: float = SEND_TIMEOUT_SECONDS) -> bool:
    """Block until every queued report was sent or dropped (for tests and the kernel's exit)."""
    done = threading.Event()
    threading.Thread(target=lambda: (_waiting.join(), done.set()), daemon=True).start()
    return done.wait(timeout)


def _ensure_sender() -> None:
    global _sender
    with _sender_lock:
        if _sender is None or not _sender.is_alive():
            _sender = threading.Thread(target=_send_forever, name="progress-report", daemon=True)
            _sender.start()


def _send(request: urllib.request.Request) -> float:
    """Send one report; 0, or the seconds the console asks this kernel to wait (429)."""
    try:
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_SECONDS):
            return 0.0
    except urllib.error.HTTPError as refused:
        if refused.code != HTTPStatus.TOO_MANY_REQUESTS:
            return 0.0
        retry_after = refused.headers.get("Retry-After", "")
        return min(float(retry_after) if retry_after.isdigit() else 1.0, MAX_PAUSE_SECONDS)
    except (urllib.error.URLError, OSError, ValueError):
        return 0.0  # the console is away or refused it: the check itself must not notice


def _send_forever() -> None:
    while True:
        request = _waiting.get()
        try:
            pause = _send(request)
            if pause:
                # More reports than the console takes from one attendee (a check run in a
                # loop): wait as it asks, then send this one once more, so its last result
                # still arrives; later reports wait in the queue meanwhile.
                time.sleep(pause)
                _send(request)
        finally:
            _waiting.task_done()
