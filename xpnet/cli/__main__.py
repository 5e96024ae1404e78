"""``python -m xpnet.cli`` is the ``xpnet`` command."""

import sys

from . import main

sys.exit(main())
