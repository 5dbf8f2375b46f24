"""``python -m lc_utils.run``: execute every notebook and write the report."""

import sys

from .runner import main

sys.exit(main())
