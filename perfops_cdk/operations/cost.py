"""What a fleet costs: the deploy's estimate and the status' running cost, priced from
a price file (``--prices``) or from AWS (effects/prices.py).

Against the local emulator there is no Price List API (moto serves none), so without a
price file every price is unknown and the estimate says so rather than guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from perfops_cdk.effects import prices as price_source
from perfops_cdk.effects.aws import endpoint_url
from perfops_cdk.operations.status import Status
from perfops_cdk.planners import cost
from perfops_cdk.planners.cost import Estimate, Needs, Prices
from perfops_cdk.planners.stacks import Unit

EMULATOR_NOTE = "the AWS emulator has no Price List API; pass --prices FILE"


def read_prices(path: Path | None) -> Prices | None:
    """The ``--prices`` file, read and checked before anything else runs."""
    return None if path is None else price_source.read_price_file(path)


def prices_for(needed: Needs, table: Prices | None) -> Prices:
    """``table`` when given; else AWS' prices, or none against the emulator."""
    if table is not None:
        return table
    if endpoint_url():
        return Prices(source="no price source", notes=(EMULATOR_NOTE,))
    return price_source.from_aws(needed)


def fleet_estimate(units: Iterable[Unit], table: Prices | None) -> Estimate:
    """What the declared hosts of ``units`` cost per hour once they all run."""
    groups = [g for u in units for g in u.groups]
    return cost.estimate(groups, prices_for(cost.needs(groups), table))


def running_estimate(status: Status, table: Prices | None) -> Estimate:
    """What the live hosts ``status`` found cost per hour."""
    needed = cost.needs(status.groups, status.hosts)
    return cost.running(status.hosts, status.groups, prices_for(needed, table))
