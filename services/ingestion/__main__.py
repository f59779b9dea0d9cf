"""``python -m services.ingestion``: the same as ``botfleet ingestion``."""

from services.ingestion.app import main

raise SystemExit(main())
