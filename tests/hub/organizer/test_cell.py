"""A cell's replies, in the order a kernel sends them (captured from ipykernel 7)."""

from workshop_hub.organizer.cell import CellReplies, execute_request


def reply(request, msg_type, content, parent=None):
    return {
        "msg_type": msg_type,
        "content": content,
        "parent_header": {"msg_id": parent or request["header"]["msg_id"]},
    }


def test_output_is_gathered_until_the_kernel_is_idle():
    request = execute_request("print(5 * 4)", "ada")
    assert request["content"]["code"] == "print(5 * 4)" and request["channel"] == "shell"
    replies = CellReplies(request)
    assert not replies.add(reply(request, "status", {"execution_state": "busy"}))
    assert not replies.add(reply(request, "stream", {"name": "stdout", "text": "2"}))
    # Another cell's output on the same socket is not this cell's.
    assert not replies.add(reply(request, "stream", {"text": "x"}, parent="someone-else"))
    assert not replies.add(reply(request, "stream", {"name": "stdout", "text": "0\n"}))
    assert replies.add(reply(request, "status", {"execution_state": "idle"}))
    assert replies.output == "20\n" and replies.error is None


def test_an_error_is_named():
    request = execute_request("1/0", "ada")
    replies = CellReplies(request)
    replies.add(
        reply(request, "error", {"ename": "ZeroDivisionError", "evalue": "division by zero"})
    )
    assert replies.add(reply(request, "status", {"execution_state": "idle"}))
    assert replies.error == "ZeroDivisionError: division by zero"


def test_each_request_has_its_own_id():
    assert (
        execute_request("", "a")["header"]["msg_id"] != execute_request("", "a")["header"]["msg_id"]
    )
