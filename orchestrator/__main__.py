"""``python -m orchestrator`` is the ``tagmatrix`` command."""

from .cli import main

raise SystemExit(main())
