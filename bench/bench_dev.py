"""How fast `make run` shows a newcomer trading bots: `botfleet dev` from launch to
the API answering, to three running demo bots, to the first fill and the first closed
round trip, and how long Ctrl-C takes to stop everything. Simulator at x60 (the
default of `botfleet dev`), fresh data directory, free ports. Prints the figures."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.fleet import DevFleet


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-dev-") as tmp:
        fleet = DevFleet(Path(tmp), sim_speed=60)
        t0 = time.monotonic()
        try:
            fleet.start(timeout=60)
            t_api = time.monotonic() - t0
            fleet.wait_for_bots(3, timeout=60)
            t_bots = time.monotonic() - t0

            def filled() -> bool:
                r = fleet.client().get("/api/v1/orders", params={"limit": 1})
                return r.status_code == 200 and len(r.json()) > 0

            fleet.process.wait_for(filled, 90, "first fill")
            t_fill = time.monotonic() - t0
            fleet.wait_for_trades(min_trades=1, timeout=90)
            t_trade = time.monotonic() - t0
            t1 = time.monotonic()
            code = fleet.interrupt(timeout=60)
            t_stop = time.monotonic() - t1
        finally:
            fleet.kill()
    print("botfleet dev (simulator x60, 2 runners, fresh data dir)")
    print(f"  API answering          {t_api:6.1f} s after launch")
    print(f"  3 demo bots running    {t_bots:6.1f} s")
    print(f"  first fill             {t_fill:6.1f} s")
    print(f"  first closed trade     {t_trade:6.1f} s")
    print(f"  Ctrl-C to exit {code}      {t_stop:6.1f} s")


if __name__ == "__main__":
    main()
