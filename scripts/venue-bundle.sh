#!/usr/bin/env bash
# Carry the workshop to a venue without internet: one archive holding the built images and
# this project's files, verified before anything in it is believed (scripts/venue_bundle.py
# says how).
#
#   scripts/venue-bundle.sh save [FILE]                    # prints the bundle's digest
#   scripts/venue-bundle.sh load FILE [DIR] --digest HEX   # at the venue
set -euo pipefail
command -v python3 >/dev/null \
    || { echo "error: python3 is not installed: install it (apt-get install python3)" >&2; exit 1; }
exec python3 "$(dirname "$0")/venue_bundle.py" "$@"
