"""`python -m dkl` is the `dkl` command."""

import sys

from dkl.main import main

sys.exit(main())
