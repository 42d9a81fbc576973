#!/bin/sh
# Container start: give the attendee their own copy of any lab they don't have yet (never
# overwriting one), then run the Jupyter server that JupyterHub spawned us for.
set -e
python -m workshop_labs.workfolder --labs "$WORKSHOP_NOTEBOOKS_DIR" --work "$HOME/work"
exec jupyterhub-singleuser "$@"
