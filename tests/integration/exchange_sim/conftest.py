"""The simulator fixtures (``sim``, ``sim_factory``) for this folder's tests."""

from tests.support.sim import sim, sim_factory  # noqa: F401
