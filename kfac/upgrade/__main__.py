"""`python -m kfac.upgrade`: the `kfac-upgrade` command."""

import sys

from kfac.upgrade import main

sys.exit(main())
