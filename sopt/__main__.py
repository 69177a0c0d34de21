"""``python -m sopt``: the same as the ``sopt`` command."""
from .cli import main

raise SystemExit(main())
