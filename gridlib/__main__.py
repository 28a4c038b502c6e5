"""``python -m gridlib``: see :mod:`gridlib.cli`."""

from gridlib.cli import main

raise SystemExit(main())
