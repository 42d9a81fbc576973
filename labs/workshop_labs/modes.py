"""How a lab run is told its mode, in environment variables its kernel inherits.

Torch-free on purpose: the smoke test and the test suites set these for the kernels they
start, and importing torch there only to read a name would cost each of them its memory
(about 300 MB, which lab 7's torchrun then lacks under the attendee's limit).
"""

from __future__ import annotations

# Quick mode: fewer epochs and samples, for tests and the smoke test (workshop_labs.runtime).
QUICK_ENV = "WORKSHOP_QUICK"
# Strict checks: an unsolved exercise fails the run instead of going on with its stand-in.
STRICT_ENV = "WORKSHOP_STRICT_CHECKS"
