#!/bin/sh
# pip install into the image's virtualenv, with the versions of constraints.txt.
# Behind a TLS-inspecting proxy the build needs that proxy's CA: a *.crt file placed in
# docker/build-ca/ is trusted here, in the build stage only, never in the final image.
set -eu
ca=$(ls /tmp/build-ca/*.crt 2>/dev/null | head -n 1 || true)
if [ -n "$ca" ]; then
  export PIP_CERT="$ca"
fi
exec /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --progress-bar off \
  -c /opt/workshop/constraints.txt "$@"
