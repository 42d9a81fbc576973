"""``show_solution(lab, exercise)``: an exercise's solution, once the instructor reveals it.

Attendees' notebooks hold no solutions (notebooks.attendee_edition): where the source has a
solution, the attendee's notebook has a cell that calls this. The hub's console keeps every
solution and answers with it only after the instructor reveals it, for that exercise or the
whole lab; until then this says so, and running the same cell again later shows it, in the
same kernel, with no restart.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from workshop_labs import progress
from workshop_labs.checks import RESET, YELLOW

# Short: "Run All" passes every solution cell, and a hub that does not answer must not
# hold the lab up for long at each.
ASK_TIMEOUT_SECONDS = 5


def show_solution(lab: int, exercise: str) -> bool:
    """Show the solution to ``exercise`` of ``lab`` if it is revealed; True when shown."""
    request = progress.console_request(f"solutions/{int(lab)}/{exercise}")
    if request is None:
        _say(
            "This kernel does not run on the workshop hub, which keeps the solutions: "
            f"lab {lab}'s source in the repository's labs/ folder has them."
        )
        return False
    try:
        with urllib.request.urlopen(request, timeout=ASK_TIMEOUT_SECONDS) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as error:
        _say(f"The hub answered {error.code} ({_message(error)}). Ask your instructor.")
        return False
    except (urllib.error.URLError, OSError, ValueError) as error:
        _say(
            f"The hub cannot be reached right now ({getattr(error, 'reason', error)}): "
            "run this cell again in a minute."
        )
        return False
    if not answer.get("revealed"):
        _say(
            f"The solution to lab {lab} · {exercise} is not revealed yet. Your instructor "
            "reveals it when the room is ready; run this cell again then."
        )
        return False
    from IPython.display import Markdown, display

    display(Markdown(answer["markdown"]))
    return True


def _message(error: urllib.error.HTTPError) -> str:
    try:
        return json.load(error).get("message") or error.reason
    except (ValueError, AttributeError, OSError):
        return str(error.reason)


def _say(text: str) -> None:
    print(f"{YELLOW}{text}{RESET}")
