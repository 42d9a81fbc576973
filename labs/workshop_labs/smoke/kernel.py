"""A Jupyter kernel starts and answers, as JupyterLab's would."""

from __future__ import annotations

import time

from workshop_labs.smoke.core import Failed, Options, progress


def check_kernel(options: Options, figures: dict) -> str:
    """JupyterLab is useless if its kernel cannot start (missing ipykernel, a broken
    kernelspec, no writable runtime dir)."""
    from jupyter_client.manager import start_new_kernel

    progress("kernel: starting a python3 kernel")
    start = time.perf_counter()
    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=60)
    try:
        figures["startup_seconds"] = round(time.perf_counter() - start, 2)
        figures["kernel_argv"] = manager.kernel_spec.argv if manager.kernel_spec else None
        results: list[str] = []

        def keep_result(message: dict) -> None:
            if message["msg_type"] == "execute_result":
                results.append(message["content"]["data"].get("text/plain", ""))

        reply = client.execute_interactive("1+1", timeout=30, output_hook=keep_result)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    figures["status"] = reply["content"]["status"]
    figures["result"] = results[0] if results else None
    if figures["status"] != "ok" or figures["result"] != "2":
        raise Failed(f"the kernel answered {figures['result']!r} ({figures['status']}) to 1+1")
    return f"python3 kernel started in {figures['startup_seconds']} s, 1+1 = 2"
