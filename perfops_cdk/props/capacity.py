"""Capacity: how a deployment's hosts are bought (market, instance types, fallback)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from perfops_cdk.errors import InvalidField
from perfops_cdk.props.fields import int_range, one_of, to_tuple, using
from perfops_cdk.props.instance_types import memory_mib
from perfops_cdk.props.validators import check_instance_type

MARKETS = frozenset({"on-demand", "spot"})
SPOT_ALLOCATIONS = frozenset(
    {"price-capacity-optimized", "capacity-optimized", "lowest-price", "diversified"}
)
# A fleet takes at most 50 overrides: types x availability zones (at most 6 per region).
MAX_INSTANCE_TYPES = 8
DEFAULT_BATCH_SIZE = 25


def check_price(value: Any, field: str) -> None:
    if value is None:
        return
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        price = Decimal(-1)
    if not price.is_finite() or price <= 0:
        raise InvalidField(field, value, "must be a positive USD price per hour, e.g. '0.25'")


def price_text(value: str | float | Decimal | None) -> str | None:
    return None if value is None else str(value)


def _check_types(value: Any, field: str) -> None:
    if not value:
        raise InvalidField(field, [], "name at least one instance type, e.g. ['r5d.2xlarge']")
    if len(value) > MAX_INSTANCE_TYPES:
        raise InvalidField(
            field, f"{len(value)} types", f"at most {MAX_INSTANCE_TYPES} (x zones <= 50 pools)"
        )
    for item in value:
        check_instance_type(item, field)
    if len(set(value)) != len(value):
        raise InvalidField(field, list(value), "each instance type may be listed once")


@attrs.frozen
class Capacity:
    """How a deployment's hosts are bought. Build it with ``Capacity.on_demand(...)`` or
    ``Capacity.spot(...)``.

    Hosts are launched as instant EC2 Fleets over every listed instance type in every
    availability zone of the region that offers it, ``batch_size`` hosts per fleet
    (docs/design.md). Synth-time checks (memory for the containers) use the smallest
    listed type.
    """

    instance_types: tuple[str, ...] = attrs.field(converter=to_tuple, validator=using(_check_types))
    market: str = attrs.field(default="on-demand", validator=one_of(MARKETS))
    on_demand_base: int = attrs.field(default=0, validator=int_range(0, 5000))
    on_demand_percent: int = attrs.field(default=0, validator=int_range(0, 100))
    fallback_to_on_demand: bool = True
    max_price: str | None = attrs.field(
        default=None, converter=price_text, validator=using(check_price)
    )
    allocation: str = attrs.field(
        default="price-capacity-optimized", validator=one_of(SPOT_ALLOCATIONS)
    )
    batch_size: int = attrs.field(default=DEFAULT_BATCH_SIZE, validator=int_range(1, 500))

    def __attrs_post_init__(self) -> None:
        if not self.is_spot and (self.on_demand_base or self.on_demand_percent or self.max_price):
            raise InvalidField(
                "capacity",
                "on-demand with spot options",
                "on_demand_base, on_demand_percent and max_price apply to Capacity.spot(...)",
            )

    @classmethod
    def on_demand(cls, *instance_types: str, batch_size: int = DEFAULT_BATCH_SIZE) -> Capacity:
        """Every host on-demand, on the cheapest listed type EC2 has capacity for."""
        return cls(instance_types=instance_types, batch_size=batch_size)

    @classmethod
    def spot(
        cls,
        *instance_types: str,
        max_price: str | None = None,
        on_demand_base: int = 0,
        on_demand_percent: int = 0,
        fallback_to_on_demand: bool = True,
        allocation: str = "price-capacity-optimized",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Capacity:
        """Spot hosts from the deepest, cheapest pools (``allocation``), over every listed
        type and zone.

        :param max_price: USD per hour per host. Default: the on-demand price.
        :param on_demand_base: hosts per region bought on-demand before any spot.
            Default 0.
        :param on_demand_percent: share (0-100) of the hosts above the base bought
            on-demand. Default 0.
        :param fallback_to_on_demand: when spot cannot supply every host of a region,
            ``perfops deploy`` retries the shortfall once on-demand and says so.
            Default True.
        """
        return cls(
            instance_types=instance_types,
            market="spot",
            max_price=max_price,
            on_demand_base=on_demand_base,
            on_demand_percent=on_demand_percent,
            fallback_to_on_demand=fallback_to_on_demand,
            allocation=allocation,
            batch_size=batch_size,
        )

    @property
    def is_spot(self) -> bool:
        return self.market == "spot"

    @property
    def smallest_type(self) -> str:
        """The listed type with the least memory (unknown memory counts as largest)."""
        known = [(memory_mib(t), i, t) for i, t in enumerate(self.instance_types)]
        return min(known, key=lambda k: (k[0] is None, k[0] or 0, k[1]))[2]
