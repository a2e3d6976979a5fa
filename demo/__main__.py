"""``python -m demo [options]``: see ``python -m demo --help``."""

import sys

from demo.loop import main

sys.exit(main(sys.argv[1:]))
