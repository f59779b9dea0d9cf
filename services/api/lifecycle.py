"""The bot lifecycle rules of the API, pure: which changes are allowed in which state.

A bot's state is its ``desired`` field (the API's) and its ``status`` (the runner's).
Config may change and the bot may be deleted only when it is stopped on both counts and
no runner holds its lease; start and stop are always accepted (desired state: the
runners reconcile), but starting needs live runners and a live gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.api.errors import Conflict
from shared.bots import BotStatus, Desired

# Statuses in which nothing runs for the bot.
AT_REST = frozenset({BotStatus.STOPPED.value, BotStatus.ERROR.value})


@dataclass(frozen=True, slots=True)
class BotState:
    desired: str
    status: str
    leased: bool


def _resting(state: BotState, what: str) -> None:
    if state.desired != Desired.STOPPED.value:
        raise Conflict(f"cannot {what} a bot whose desired state is {state.desired}: stop it first")
    if state.status not in AT_REST:
        raise Conflict(f"cannot {what} a bot while it is {state.status}: wait until it is stopped")
    if state.leased:
        raise Conflict(f"cannot {what} a bot while a runner still holds it: retry shortly")


def check_update(state: BotState) -> None:
    _resting(state, "change the config of")


def check_delete(state: BotState) -> None:
    _resting(state, "delete")


def settled(action: str, status: str) -> bool:
    """Whether ``status`` is where ``action`` leads (``?wait=`` stops waiting)."""
    if action == "start":
        return status in (
            BotStatus.RUNNING.value,
            BotStatus.NEEDS_ATTENTION.value,  # running, with an intent's outcome unknown
            BotStatus.ERROR.value,
        )
    return status in AT_REST
