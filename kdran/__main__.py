"""``python -m kdran`` = the ``kdran`` console script."""

import sys

from kdran.cli import main

sys.exit(main())
