"""``python -m statehub``."""

from statehub.cli import main

raise SystemExit(main())
