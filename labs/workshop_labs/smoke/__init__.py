"""The lab image's own check: can an attendee do the whole course here?

Run it inside a lab container (the image ships this package) or natively in a virtualenv
with ``pip install -e labs`` and torch, on the venue's machines, before the course starts:

    python -m workshop_labs.smoke                     # every check, table on the terminal
    python -m workshop_labs.smoke --json report.json  # and a machine-readable report
    python -m workshop_labs.smoke --require-gpu       # the cuda image on a GPU host
    python -m workshop_labs.smoke --skip labs         # or --only versions,amp,lab:02

Each check ends with a verdict: pass, warn (works, but differs from what the image pins),
skip (cannot apply here, with the reason) or fail (with the cause and the fix). The exit
status is 0 only when no check failed. Progress of the long steps goes to stderr.

One module per group of checks (system, versions, gpu, amp, dataloader, kernel, labs), the
verdicts they share in ``core``, the table and the JSON report in ``report``, the command
line in ``cli``. Only the standard library is imported up front, so a broken torch or
Jupyter install is reported as a failed check instead of a traceback.
"""
