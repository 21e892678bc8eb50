"""What a fleet costs per hour: pure functions from host groups (before a deploy) or
live hosts (``perfops status``) and a price table.

Instances are priced per hour by region, type and market; root volumes per GB-month by
region and volume type, and per hour as that price / 730 (AWS counts a month as 730
hours). A price the table does not hold is never guessed: the line names what is
missing, and a total adds what is known and says that it is incomplete.

A deployment that lists several instance types may get any of them, so its line is a
range from the cheapest to the dearest type (vCPUs likewise). A spot deployment with
an on-demand fallback in place (spot fell short) is priced as it runs: the fallback's
hosts on demand, in place of as many spot hosts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from perfops_cdk.errors import PerfOpsError
from perfops_cdk.planners.folding import fold
from perfops_cdk.planners.stacks import HostGroup
from perfops_cdk.planners.status import LIVE_STATES, Host
from perfops_cdk.props.instance_types import vcpus

HOURS_PER_MONTH = Decimal(730)
ON_DEMAND, SPOT = "on-demand", "spot"
MARKETS = (ON_DEMAND, SPOT)
PRICES_DOC = "docs/operations.md#prices"


@attrs.frozen
class Prices:
    """USD prices: ``ec2[region][type][market]`` per hour, ``ebs[region][volume type]``
    per GB-month; ``source`` says where they came from, ``notes`` what went wrong."""

    ec2: Mapping[str, Mapping[str, Mapping[str, Decimal]]] = attrs.field(factory=dict)
    ebs: Mapping[str, Mapping[str, Decimal]] = attrs.field(factory=dict)
    source: str = "no price source"
    notes: tuple[str, ...] = ()

    def instance(self, region: str, instance_type: str, market: str) -> Decimal | None:
        return self.ec2.get(region, {}).get(instance_type, {}).get(market)

    def volume(self, region: str, volume_type: str) -> Decimal | None:
        return self.ebs.get(region, {}).get(volume_type)


def _price(value: Any, where: str, source: str) -> Decimal:
    try:
        price = Decimal(value) if isinstance(value, str | int) else None
    except InvalidOperation:
        price = None
    if price is None or not price.is_finite() or price < 0:
        raise PerfOpsError(
            f"{source}: {where}: {value!r} is not a price; write USD as a string such as "
            f'"0.576" (format: {PRICES_DOC})'
        )
    return price


def _table(value: Any, where: str, source: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PerfOpsError(
            f"{source}: {where}: expected an object, not {type(value).__name__} "
            f"(format: {PRICES_DOC})"
        )
    return value


def parse_prices(document: Any, source: str) -> Prices:
    """A price file's JSON (format in docs/operations.md) as Prices; anything else is one
    line naming the file, the place in it and what was expected."""
    top = _table(document, "the top level", source)
    unknown = sorted(set(top) - {"ec2", "ebs", "source", "date"})
    if unknown:
        raise PerfOpsError(
            f"{source}: unknown key {unknown[0]!r}; expected ec2, ebs, source, date "
            f"(format: {PRICES_DOC})"
        )
    ec2: dict[str, dict[str, dict[str, Decimal]]] = {}
    for region, types in _table(top.get("ec2", {}), "ec2", source).items():
        for instance_type, markets in _table(types, f"ec2.{region}", source).items():
            where = f"ec2.{region}.{instance_type}"
            for market, value in _table(markets, where, source).items():
                if market not in MARKETS:
                    raise PerfOpsError(
                        f"{source}: {where}: market {market!r} is not on-demand or spot "
                        f"(format: {PRICES_DOC})"
                    )
                price = _price(value, f"{where}.{market}", source)
                ec2.setdefault(region, {}).setdefault(instance_type, {})[market] = price
    ebs: dict[str, dict[str, Decimal]] = {}
    for region, volumes in _table(top.get("ebs", {}), "ebs", source).items():
        for volume_type, value in _table(volumes, f"ebs.{region}", source).items():
            price = _price(value, f"ebs.{region}.{volume_type}", source)
            ebs.setdefault(region, {})[volume_type] = price
    label = str(top.get("source") or source)
    if top.get("date"):
        label += f", {top['date']}"
    return Prices(ec2=ec2, ebs=ebs, source=label)


@attrs.frozen
class Span:
    """A value known to lie from ``low`` to ``high`` (both, when they are equal)."""

    low: Decimal
    high: Decimal

    @classmethod
    def of(cls, values: Iterable[Decimal | int]) -> Span:
        items = [Decimal(v) for v in values]
        return cls(min(items), max(items)) if items else cls(Decimal(0), Decimal(0))

    def __add__(self, other: Span) -> Span:
        return Span(self.low + other.low, self.high + other.high)

    def times(self, factor: Decimal | int) -> Span:
        return Span(self.low * factor, self.high * factor)


ZERO = Span(Decimal(0), Decimal(0))


@attrs.frozen
class Missing:
    """A price (or size) an estimate lacks, and the region it lacks it in."""

    what: str  # "no spot price for r5d.xlarge", "no gp3 volume price"
    region: str

    def __str__(self) -> str:
        return f"{self.what} in {self.region}"


@attrs.frozen
class CostLine:
    """One deployment in one region: its hosts, vCPUs and price per hour.

    ``per_hour`` adds what is known; ``missing`` names each price that is not, and
    when it is not empty ``per_hour`` is only a lower bound.
    """

    app_stack: str
    deployment: str
    region: str
    hosts: int
    instance_types: tuple[str, ...]
    on_demand: int
    spot: int
    vcpus: Span | None
    per_hour: Span
    missing: tuple[Missing, ...] = ()
    lifetime: str | None = None
    declared: bool = True
    regions: tuple[str, ...] = ()  # a line folded over several regions (folded())

    @property
    def complete(self) -> bool:
        return not self.missing


def folded(lines: Sequence[CostLine]) -> list[CostLine]:
    """The lines as a table shows them: a deployment alike (types, market, lifetime)
    in EVERY_REGION_FROM regions or more is one line over them, its figures summed."""
    return fold(lines, _likeness, _merged)


def _merged(same: Sequence[CostLine]) -> CostLine:
    vcpus = [s.vcpus for s in same]
    return attrs.evolve(
        same[0],
        regions=tuple(s.region for s in same),
        hosts=sum(s.hosts for s in same),
        on_demand=sum(s.on_demand for s in same),
        spot=sum(s.spot for s in same),
        vcpus=None if None in vcpus else sum((v for v in vcpus if v), ZERO),
        per_hour=sum((s.per_hour for s in same), ZERO),
        missing=tuple(dict.fromkeys(m for s in same for m in s.missing)),
    )


def _likeness(line: CostLine) -> tuple[object, ...]:
    return (
        line.app_stack,
        line.deployment,
        line.instance_types,
        bool(line.spot),
        bool(line.on_demand),
        line.lifetime,
        line.declared,
    )


@attrs.frozen
class Estimate:
    """Cost lines and their sums; ``prices`` says where the prices came from."""

    lines: tuple[CostLine, ...]
    prices: Prices

    @property
    def hosts(self) -> int:
        return sum(line.hosts for line in self.lines)

    @property
    def vcpus(self) -> Span | None:
        spans = [line.vcpus for line in self.lines if line.hosts]
        if any(s is None for s in spans):
            return None
        return sum((s for s in spans if s is not None), ZERO)

    @property
    def per_hour(self) -> Span:
        return sum((line.per_hour for line in self.lines), ZERO)

    @property
    def incomplete(self) -> int:
        """Lines whose price is only a lower bound."""
        return sum(1 for line in self.lines if line.missing)

    def missing(self) -> dict[str, list[str]]:
        """Each missing price once, with the regions that lack it (a fleet without a
        price source lacks the same few in every line)."""
        where: dict[str, list[str]] = {}
        for line in self.lines:
            for missing in line.missing:
                regions = where.setdefault(missing.what, [])
                if missing.region not in regions:
                    regions.append(missing.region)
        return where

    @property
    def regions(self) -> list[str]:
        return sorted({line.region for line in self.lines})

    @property
    def without_lifetime(self) -> tuple[str, ...]:
        """Deployments with hosts and no lifetime: they run until destroyed."""
        names = {line.deployment for line in self.lines if line.hosts and not line.lifetime}
        return tuple(sorted(names))


def _vcpus(types: Sequence[str]) -> Span | None:
    counts = [vcpus(t) for t in types]
    if not counts or any(c is None for c in counts):
        return None
    return Span.of(c for c in counts if c is not None)


def _volumes(
    prices: Prices,
    region: str,
    hosts: int,
    size_gib: int,
    volume_type: str,
    missing: list[Missing],
) -> Span:
    if not hosts:
        return ZERO
    price = prices.volume(region, volume_type)
    if price is None:
        missing.append(Missing(f"no {volume_type} volume price", region))
        return ZERO
    return Span.of([price * size_gib * hosts / HOURS_PER_MONTH])


def _instances(
    prices: Prices,
    region: str,
    types: Sequence[str],
    market: str,
    hosts: int,
    missing: list[Missing],
) -> Span:
    if not hosts:
        return ZERO
    known = []
    for instance_type in types:
        price = prices.instance(region, instance_type, market)
        if price is None:
            missing.append(Missing(f"no {market} price for {instance_type}", region))
        else:
            known.append(price)
    return Span.of(known).times(hosts) if known else ZERO


def estimate(groups: Iterable[HostGroup], prices: Prices) -> Estimate:
    """What the declared groups cost per hour once every host runs."""
    lines = []
    for group in groups:
        if not group.hosts:
            continue
        missing: list[Missing] = []
        spot = group.hosts - group.on_demand_hosts if group.market == SPOT else 0
        # The on-demand fallback (planners/capacity.py) stands in for spot hosts spot
        # could not give: as many hosts run, that many of them on demand.
        spot -= min(group.fallback_hosts, spot)
        on_demand = group.hosts - spot
        types, region = group.instance_types, group.region
        per_hour = (
            _instances(prices, region, types, ON_DEMAND, on_demand, missing)
            + _instances(prices, region, types, SPOT, spot, missing)
            + _volumes(
                prices, region, group.hosts, group.root_volume_gib, group.root_volume_type, missing
            )
        )
        vcpu = _vcpus(types)
        lines.append(
            CostLine(
                app_stack=group.app_stack,
                deployment=group.deployment,
                region=region,
                hosts=group.hosts,
                instance_types=types,
                on_demand=on_demand,
                spot=spot,
                vcpus=vcpu.times(group.hosts) if vcpu else None,
                per_hour=per_hour,
                missing=tuple(missing),
                lifetime=group.lifetime,
            )
        )
    return Estimate(lines=tuple(_sorted(lines)), prices=prices)


def running(hosts: Iterable[Host], groups: Iterable[HostGroup], prices: Prices) -> Estimate:
    """What the live hosts cost per hour, each by its own type and lifecycle; root
    volumes as their group declares them (unknown for hosts nothing declares)."""
    declared = {(g.app_stack, g.deployment, g.region): g for g in groups}
    by_key: dict[tuple[str, str, str], list[Host]] = {}
    for host in hosts:
        if host.state in LIVE_STATES:
            by_key.setdefault((host.app_stack, host.deployment, host.region), []).append(host)
    lines = []
    for key, live in sorted(by_key.items()):
        app_stack, deployment, region = key
        group = declared.get(key)
        missing: list[Missing] = []
        per_hour = ZERO
        for host in live:
            market = SPOT if host.lifecycle == SPOT else ON_DEMAND
            per_hour += _instances(prices, region, [host.instance_type], market, 1, missing)
        if group is None:
            missing.append(Missing("root volume size unknown (nothing declares the hosts)", region))
        else:
            per_hour += _volumes(
                prices, region, len(live), group.root_volume_gib, group.root_volume_type, missing
            )
        counts = [vcpus(h.instance_type) for h in live]
        spot = sum(1 for h in live if h.lifecycle == SPOT)
        lines.append(
            CostLine(
                app_stack=app_stack,
                deployment=deployment,
                region=region,
                hosts=len(live),
                instance_types=tuple(sorted({h.instance_type for h in live})),
                on_demand=len(live) - spot,
                spot=spot,
                vcpus=None if None in counts else Span.of([sum(c or 0 for c in counts)]),
                per_hour=per_hour,
                missing=tuple(dict.fromkeys(missing)),
                lifetime=group.lifetime if group else None,
                declared=group is not None,
            )
        )
    return Estimate(lines=tuple(_sorted(lines)), prices=prices)


def _sorted(lines: Iterable[CostLine]) -> list[CostLine]:
    return sorted(lines, key=lambda c: (c.app_stack, c.deployment, c.region))


@attrs.frozen
class Needs:
    """The prices an estimate looks up: (region, type, market) and (region, volume type)."""

    instances: frozenset[tuple[str, str, str]] = frozenset()
    volumes: frozenset[tuple[str, str]] = frozenset()

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(sorted({r for r, _, _ in self.instances} | {r for r, _ in self.volumes}))


def needs(groups: Iterable[HostGroup], hosts: Iterable[Host] = ()) -> Needs:
    """Every price ``estimate`` (groups) or ``running`` (hosts and groups) asks for."""
    instances: set[tuple[str, str, str]] = set()
    volumes: set[tuple[str, str]] = set()
    for group in groups:
        volumes.add((group.region, group.root_volume_type))
        markets = (ON_DEMAND, SPOT) if group.market == SPOT else (ON_DEMAND,)
        instances.update((group.region, t, m) for t in group.instance_types for m in markets)
    for host in hosts:
        market = SPOT if host.lifecycle == SPOT else ON_DEMAND
        instances.add((host.region, host.instance_type, market))
    return Needs(instances=frozenset(instances), volumes=frozenset(volumes))


def usd(value: Decimal) -> str:
    """``0.576``, ``2.4912``, ``12.50``: at most 4 decimals, at least 2."""
    text = f"{value.quantize(Decimal('0.0001')):f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def span_text(span: Span, money: bool = True) -> str:
    show = usd if money else (lambda d: f"{d:f}")
    low, high = show(span.low), show(span.high)
    return low if low == high else f"{low}-{high}"
