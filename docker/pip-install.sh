#!/bin/sh
# Installs into the image's virtualenv with the versions of constraints.txt, through uv: it
# downloads and unpacks in parallel, which saves minutes of a first `docker compose up` (the
# lab image's torch alone is gigabytes). uv itself comes from PyPI with pip, pinned there too.
# Like pip, uv takes each package from whichever index has the best match for its pin
# (unsafe-best-match), so torch's own index serves torch and PyPI serves the rest.
# TLS: the base image's CA bundle, so that a base image that trusts a TLS-inspecting proxy
# builds behind it (docs/organizers.md).
set -eu
constraints=/opt/workshop/constraints.txt
system_ca=/etc/ssl/certs/ca-certificates.crt
if [ -r "$system_ca" ]; then
  export PIP_CERT="$system_ca" SSL_CERT_FILE="$system_ca"
fi
if [ ! -x /opt/venv/bin/uv ]; then
  /opt/venv/bin/pip install --quiet --no-cache-dir --disable-pip-version-check -c "$constraints" uv
fi
# --compile-bytecode, as pip does: attendees cannot write to /opt/venv, so without .pyc files
# every process would compile torch's modules again at each import (seconds, and memory that
# lab 7's three torch processes do not have under an attendee's 2 GB).
exec /opt/venv/bin/uv pip install --python /opt/venv/bin/python --no-cache --compile-bytecode \
  --index-strategy unsafe-best-match -c "$constraints" "$@"
