"""How a deployment's hosts in one region are split into EC2 fleets: pure functions.

An instant EC2 Fleet cannot be resized; changing its size replaces it and its hosts.
So a region's hosts are launched in batches of at most ``size``: full batches keep
their keys and their hosts when the count changes, and only the last, partial batch
is replaced. Adding 10 hosts to 250 (size 25) creates one new fleet of 10 and touches
no running host; going from 255 to 260 replaces the 5-host batch with a 10-host one.
"""

from __future__ import annotations

import math

import attrs


@attrs.frozen
class Batch:
    """One fleet: ``hosts`` in all, ``on_demand`` of them on-demand (the rest spot)."""

    key: str
    hosts: int
    on_demand: int


def on_demand_hosts(total: int, *, spot: bool, base: int, percent: int) -> int:
    """Hosts of a region bought on-demand: all without spot; with spot, ``base`` first,
    then ``percent`` of the rest (rounded up, as EC2 Fleet and ASGs round)."""
    if not spot:
        return total
    first = min(base, total)
    return first + math.ceil((total - first) * percent / 100)


def split(total: int, size: int, on_demand: int) -> list[Batch]:
    """``total`` hosts in batches of ``size``; the on-demand hosts fill the first batches."""
    batches = []
    left_on_demand = on_demand
    for index, start in enumerate(range(0, total, size)):
        hosts = min(size, total - start)
        taken = min(hosts, left_on_demand)
        left_on_demand -= taken
        batches.append(Batch(key=str(index), hosts=hosts, on_demand=taken))
    return batches
