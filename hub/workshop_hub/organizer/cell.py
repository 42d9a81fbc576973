"""One cell run in a Jupyter kernel over its websocket, as JupyterLab does: the request, and
the replies gathered until the kernel is idle again (Jupyter messaging protocol 5.3)."""

from __future__ import annotations

import uuid


def execute_request(code: str, username: str) -> dict:
    """The message to send on the kernel's `channels` websocket."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "username": username,
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {"code": code, "silent": False, "store_history": False},
        "channel": "shell",
    }


class CellReplies:
    """What the kernel answered to one request: its printed output and its error, if any."""

    def __init__(self, request: dict):
        self.msg_id = request["header"]["msg_id"]
        self.stdout: list[str] = []
        self.error: str | None = None

    @property
    def output(self) -> str:
        return "".join(self.stdout)

    def add(self, reply: dict) -> bool:
        """Take one message from the websocket; True once the cell has finished."""
        if reply.get("parent_header", {}).get("msg_id") != self.msg_id:
            return False
        kind, content = reply["msg_type"], reply["content"]
        if kind == "stream":
            self.stdout.append(content["text"])
        elif kind in ("display_data", "execute_result"):
            # What a notebook would render, as text (a Markdown display's source).
            data = content.get("data", {})
            self.stdout.append(data.get("text/markdown") or data.get("text/plain", ""))
        elif kind == "error":
            self.error = f"{content['ename']}: {content['evalue']}"
        return kind == "status" and content["execution_state"] == "idle"
