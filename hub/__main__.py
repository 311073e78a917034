"""``python -m hub``: the same as the ``presence-hub`` command."""

from hub.ops.cli import main

raise SystemExit(main())
