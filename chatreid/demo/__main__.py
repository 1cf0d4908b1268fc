"""``python -m chatreid.demo build ...``: see ``chatreid.demo``."""

import sys

from chatreid.demo.cli import main

sys.exit(main())
