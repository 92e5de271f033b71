"""``python -m r1track`` = the ``r1track`` command."""

import sys

from .cli import main

sys.exit(main())
