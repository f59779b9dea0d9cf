"""The whole fleet (``botfleet dev``) for end-to-end tests: ``dev_fleet`` is one
running fleet per test module, with its demo bots; tests that only read share it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fleet import DevFleet


@pytest.fixture(scope="module")
def dev_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevFleet]:
    fleet = DevFleet(tmp_path_factory.mktemp("fleet"))
    try:
        fleet.start()
        yield fleet
    except BaseException:
        print(f"\n===== botfleet dev log =====\n{fleet.log_text()[-8000:]}")
        raise
    finally:
        if fleet.process.alive():
            fleet.interrupt()
