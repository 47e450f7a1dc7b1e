"""`python -m dkl.instruments DATASET [options]` is `dkl instrument sim`."""

import sys

from dkl.instruments.launch import main

sys.exit(main())
