"""How a runner's load compares with the fleet's: the pure rules behind claiming a fair
share of unowned bots and handing over bots above the average (issue 6, "claims spread
so that runners end up with similar loads").

``fleet`` maps each live runner (fresh heartbeat) to (bots held, capacity).
"""

from __future__ import annotations

import math


def fair_share(
    fleet: dict[str, tuple[int, int]], owner: str, mine: int, capacity: int, candidates: int
) -> int:
    """How many of ``candidates`` unowned bots ``owner`` (holding or claiming ``mine``)
    should claim now: up to the fleet average load and its capacity, and more when the
    others have no room for the rest."""
    room = capacity - mine
    if room <= 0 or candidates <= 0:
        return 0
    others = {k: v for k, v in fleet.items() if k != owner}
    total = mine + candidates + sum(b for b, _ in others.values())
    target = math.ceil(total / (len(others) + 1))
    spare_elsewhere = sum(max(0, c - b) for b, c in others.values())
    share = target - mine
    if spare_elsewhere < candidates - max(share, 0):
        share = candidates - spare_elsewhere  # the others cannot take the rest
    return max(0, min(room, share, candidates))


def excess(fleet: dict[str, tuple[int, int]], owner: str, mine: int) -> int:
    """Bots for ``owner`` (holding ``mine``) to hand over so that loads even out: only
    when it holds more than one above the fleet average and another live runner has
    room below it; at most a tenth of its bots at a time."""
    loads = [b for b, _ in fleet.values()]
    if len(loads) < 2:
        return 0
    target = math.ceil(sum(loads) / len(loads))
    others_below = any(b < target - 1 and b < c for i, (b, c) in fleet.items() if i != owner)
    if mine <= target + 1 and not (mine > target and others_below):
        return 0
    if not others_below:
        return 0
    return min(mine - target, max(1, mine // 10))
