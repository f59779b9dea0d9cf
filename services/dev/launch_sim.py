"""Start ``botfleet exchange-sim`` with its key pair taken from the environment.

``python -m services.dev.launch_sim exchange-sim --port ...`` reads
``BOTFLEET_SIM_API_KEY`` and ``BOTFLEET_SIM_API_SECRET``, removes them from the
environment and hands them to the simulator's ``--api-key``/``--api-secret`` inside
the process, so the secret is never on a command line other users can read in ``ps``.
"""

from __future__ import annotations

import os
import sys

from services.dev.plan import SIM_KEY_ENV as KEY_ENV
from services.dev.plan import SIM_SECRET_ENV as SECRET_ENV


def main() -> None:
    key = os.environ.pop(KEY_ENV, "")
    secret = os.environ.pop(SECRET_ENV, "")
    if key and secret:
        sys.argv = [sys.argv[0], *sys.argv[1:], "--api-key", key, "--api-secret", secret]
    from services.cli import main as botfleet

    botfleet()


if __name__ == "__main__":
    main()
