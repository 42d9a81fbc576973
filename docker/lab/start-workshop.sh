#!/bin/sh
# Container start: give the attendee their own copy of any lab they don't have yet (never
# overwriting one), then run the Jupyter server that JupyterHub spawned us for.
set -e
# Copying the labs must never keep the server from starting: whatever is in the work folder,
# a crash or a hang (cut short by `timeout`) only leaves a note in the container log.
seed_timeout=60
status=0
timeout --kill-after=5 "$seed_timeout" \
    python -m workshop_labs.workfolder --labs "$WORKSHOP_NOTEBOOKS_DIR" --work "$HOME/work" \
    || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "labs: copying the labs into ~/work/labs took over ${seed_timeout} s and was stopped; starting the server anyway" >&2
elif [ "$status" -ne 0 ]; then
    echo "labs: copying the labs into ~/work/labs failed (exit $status, see above); starting the server anyway" >&2
fi
exec jupyterhub-singleuser "$@"
