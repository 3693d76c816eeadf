"""``python -m ssmboard.cli``: the same as the ``ssmboard`` command."""
import sys

from ssmboard.cli import main

sys.exit(main())
