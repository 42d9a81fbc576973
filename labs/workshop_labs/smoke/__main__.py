"""``python -m workshop_labs.smoke``: see the package's docstring."""

import sys

from workshop_labs.smoke.cli import main

sys.exit(main())
