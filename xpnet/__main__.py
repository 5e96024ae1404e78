"""``python -m xpnet`` is the ``xpnet`` command."""

import sys

from .cli import main

sys.exit(main())
