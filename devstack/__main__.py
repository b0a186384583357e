"""``python -m devstack``: what ``make run`` runs."""

from devstack.stack import main

raise SystemExit(main())
