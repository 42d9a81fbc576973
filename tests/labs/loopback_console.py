"""A console on loopback, for the kernel side's tests: what it was sent, and what it answers
(tests/e2e/test_console.py drives the real console service)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Console(ThreadingHTTPServer):
    """A console on loopback: it keeps the reports it is sent (answering after ``delay``
    seconds) and answers for solutions with what ``solutions`` holds ("LAB/EXERCISE" ->
    the JSON answer; 404 for any other)."""

    def __init__(self, delay: float = 0.0):
        self.received: list[tuple[str, dict]] = []
        self.solutions: dict[str, dict] = {}
        self.delay = delay
        console = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                time.sleep(console.delay)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.path.endswith("/api/progress"), self.path
                console.received.append((self.headers["Authorization"], json.loads(body)))
                self.send_response(201)
                self.end_headers()

            def do_GET(self):
                answer = console.solutions.get(self.path.partition("/api/solutions/")[2])
                self.send_response(200 if answer else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(answer or {"message": "no such exercise"}).encode())

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/services/console/api/"
