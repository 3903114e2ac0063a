"""``python -m jitflow``: the same as the ``jitflow`` console script."""
from jitflow.cli import main

raise SystemExit(main())
