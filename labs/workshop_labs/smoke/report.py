"""What a run ends with: the table on stdout and the full JSON report."""

from __future__ import annotations

import platform
import time

from workshop_labs.smoke.core import FAIL, PASS, SKIP, STARTED, WARN, Options, Result


def render_table(results: list[Result]) -> str:
    width = max([len("check"), *(len(result.name) for result in results)])
    lines = [f"{'check':<{width}}  verdict  seconds  details", "-" * (width + 60)]
    for result in results:
        first_line = result.note.strip().splitlines()[0] if result.note.strip() else ""
        lines.append(
            f"{result.name:<{width}}  {result.verdict.upper():<7}  {result.seconds:7.1f}  "
            f"{first_line}"
        )
    failed = [result for result in results if result.verdict == FAIL]
    for result in failed:
        if "\n" in result.note.strip():
            lines += ["", f"--- {result.name} failed ---", result.note.strip()]
    counts = {
        verdict: sum(r.verdict == verdict for r in results) for verdict in (PASS, WARN, SKIP, FAIL)
    }
    summary = ", ".join(f"{count} {verdict}" for verdict, count in counts.items() if count)
    lines += ["", f"{'FAILED' if failed else 'OK'}: {summary or 'no checks selected'}"]
    return "\n".join(lines)


def build_report(results: list[Result], options: Options, argv: list[str]) -> dict:
    return {
        "ok": not any(result.verdict == FAIL for result in results),
        "argv": argv,
        "host": platform.node(),
        "require_gpu": options.require_gpu,
        "seconds": round(time.monotonic() - STARTED, 2),
        "checks": [result.__dict__ for result in results],
    }
