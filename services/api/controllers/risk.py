"""``/api/v1/risk``: portfolio limits (read, replace) and the fleet-wide halt.

A halt stores its reason in ``risk:halt`` (the gateway then refuses new entries; exits
stay allowed) and emits an Event on ``stream:events`` for people and the dashboard.
"""

from __future__ import annotations

from litestar import Controller, get, post, put
from litestar.di import NamedDependency

from services.api.models import HaltRequest, RiskState
from services.api.repository import Repository
from shared.messages import Event
from shared.redis import now_ms
from shared.risk_limits import RiskLimits


async def _state(repo: Repository) -> RiskState:
    halt = await repo.halt_reason()
    return RiskState(limits=await repo.risk_limits(), halted=halt is not None, halt_reason=halt)


class RiskController(Controller):
    path = "/api/v1/risk"
    tags = ["risk"]

    @get("/", summary="Portfolio limits and the halt state")
    async def state(self, repo: NamedDependency[Repository]) -> RiskState:
        return await _state(repo)

    @put("/limits", summary="Replace the portfolio limits (absent field = no limit)")
    async def set_limits(self, repo: NamedDependency[Repository], data: RiskLimits) -> RiskState:
        await repo.replace_risk_limits(data.to_hash())
        return await _state(repo)

    @post("/halt", status_code=200, summary="Halt new entries fleet-wide (exits stay allowed)")
    async def halt(self, repo: NamedDependency[Repository], data: HaltRequest) -> RiskState:
        event = Event(
            kind="risk.halt",
            message=f"trading halted: {data.reason}",
            level="warning",
            service="api",
            details={"reason": data.reason},
            ts=now_ms(),
        )
        await repo.set_halt(data.reason, event)
        return await _state(repo)

    @post("/resume", status_code=200, summary="Lift the halt")
    async def resume(self, repo: NamedDependency[Repository]) -> RiskState:
        event = Event(kind="risk.resume", message="trading resumed", service="api", ts=now_ms())
        await repo.set_halt(None, event)
        return await _state(repo)
