"""``python -m tfrec`` is the ``tfrec`` command."""

import sys

from tfrec.cli import main

sys.exit(main())
