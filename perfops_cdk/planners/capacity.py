"""What a region's fleets actually got, and the on-demand fallback it calls for: pure.

An instant fleet takes what EC2 can give at that moment over the listed types and
zones, and never refills. After an apply perfops compares, per deployment and region,
the hosts declared with the hosts live from its batches. With spot and
``fallback_to_on_demand``, the shortfall becomes the size of one extra on-demand batch
(``FALLBACK_KEY``), recorded in the ledger so synthesis declares it; the deploy then
applies that region once more. When spot later covers the hosts again (a batch
replaced and filled), the recorded fallback drops back to 0 and its fleet goes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from perfops_cdk.planners.stacks import HostGroup
from perfops_cdk.planners.status import LIVE_STATES, Host
from perfops_cdk.props.regions import EVERY_REGION_FROM

FALLBACK_KEY = "fallback"


@attrs.frozen
class Fulfilment:
    """One deployment's hosts in one region after an apply."""

    region: str
    deployment: str
    declared: int
    live: int  # every live host of the deployment, fallback included
    from_batches: int  # live hosts its regular batches launched
    fallback: int  # on-demand fallback hosts declared (recorded) for it
    spot: int
    by_type: tuple[tuple[str, int], ...]
    fallback_allowed: bool
    app_stack: str = ""

    @property
    def short(self) -> int:
        return max(0, self.declared - self.live)

    @property
    def fallback_needed(self) -> int:
        """The on-demand fallback this deployment should have (0 without fallback)."""
        if not self.fallback_allowed:
            return 0
        return max(0, self.declared - self.from_batches)

    @property
    def fallback_lost(self) -> bool:
        """The fallback still needed at its size, and none of its hosts live (their
        lifetime over): the region is applied once more, and ``refills`` replaces it."""
        needed = self.fallback_needed
        return bool(needed) and needed == self.fallback and self.live <= self.from_batches

    def line(self) -> str:
        types = _types_text(self.by_type, self.spot)
        head = f"{self.region} {self.deployment}: {self.live} of {self.declared} live {types}"
        if self.fallback:
            head += f"; {self.fallback} on-demand as fallback for spot"
        if self.short and not self.fallback_allowed:
            head += f"; {self.short} short: EC2 had no capacity, the next deploy retries"
        elif self.short:
            head += f"; {self.short} short"
        return head


def _types_text(by_type: Iterable[tuple[str, int]], spot: int) -> str:
    types = ", ".join(f"{n} {t}" for t, n in by_type) or "none"
    return f"({types}; {spot} spot)" if spot else f"({types})"


def fulfilment_lines(got: Iterable[Fulfilment]) -> list[str]:
    """The after-apply lines, in order: each deployment and region's ``line``, but a
    deployment with every host live, no fallback, in EVERY_REGION_FROM regions or more
    is one line for all of them (``web: 102 of 102 live in 17 regions (102 r5d.2xlarge)``),
    where its first region's line would be."""
    items = list(got)
    by_deployment: dict[tuple[str, str], list[Fulfilment]] = {}
    for item in items:
        by_deployment.setdefault((item.app_stack, item.deployment), []).append(item)
    summaries: dict[tuple[str, str], str] = {}
    for key, alike in by_deployment.items():
        regions = len({f.region for f in alike})
        plain = all(f.live == f.declared and not f.fallback for f in alike)
        if plain and regions >= EVERY_REGION_FROM:
            types: Counter[str] = Counter()
            for f in alike:
                types.update(dict(f.by_type))
            live, spot = sum(f.live for f in alike), sum(f.spot for f in alike)
            text = _types_text(sorted(types.items()), spot)
            summaries[key] = f"{key[1]}: {live} of {live} live in {regions} regions {text}"
    lines = []
    for item in items:
        key = (item.app_stack, item.deployment)
        if key not in summaries:
            lines.append(item.line())
        elif by_deployment[key][0] is item:
            lines.append(summaries[key])
    return lines


def launched_by_batch(state: Mapping[str, Any], deployment: str) -> dict[str, set[str]]:
    """Batch key -> instance ids its fleet launched, for one deployment's fleets."""
    batches: dict[str, set[str]] = {}
    for resource in state.get("resources", []):
        if resource.get("type") != "aws_ec2_fleet" or resource.get("name") != f"{deployment}_hosts":
            continue
        for instance in resource.get("instances", []):
            attributes = instance.get("attributes") or {}
            ids = {
                i
                for launched in attributes.get("fleet_instance_set") or []
                for i in launched.get("instance_ids") or []
            }
            batches[str(instance.get("index_key"))] = ids
    return batches


def fulfilment(
    group: HostGroup, state: Mapping[str, Any], hosts: Iterable[Host], fallback: int
) -> Fulfilment:
    """How ``group`` stands: live hosts by type, and those its regular batches launched."""
    live = [
        h
        for h in hosts
        if h.state in LIVE_STATES
        and h.app_stack == group.app_stack
        and h.deployment == group.deployment
        and h.region == group.region
    ]
    live_ids = {h.instance_id for h in live}
    batches = launched_by_batch(state, group.deployment)
    from_batches = sum(len(ids & live_ids) for key, ids in batches.items() if key != FALLBACK_KEY)
    types = Counter(h.instance_type for h in live)
    return Fulfilment(
        region=group.region,
        deployment=group.deployment,
        declared=group.hosts,
        live=len(live),
        from_batches=from_batches,
        fallback=fallback,
        spot=sum(1 for h in live if h.lifecycle == "spot"),
        by_type=tuple(sorted(types.items())),
        fallback_allowed=group.market == "spot" and group.fallback_to_on_demand,
        app_stack=group.app_stack,
    )


def refills(
    state: Mapping[str, Any], live: set[str], short: Iterable[str], topped_up: set[str]
) -> list[str]:
    """The fleet addresses a deploy replaces, out of the ``short`` ones
    (leftovers.short_fleets).

    A short fleet of a deployment whose spot is ``topped_up`` by the on-demand fallback
    is kept: replacing it would terminate the spot hosts it did get. Except when every
    host it launched is gone (lifetimes over, the whole batch reclaimed): replacing it
    then terminates nothing and asks spot again, rather than letting the fallback
    bring the deployment back all on-demand. The fallback fleet itself is replaced
    that way only when none of its deployment's spot fleets is, since the fallback is
    resized after the apply by what spot then gives.
    """
    lost = {
        f'aws_ec2_fleet.{fleet}["{key}"]'
        for fleet in topped_up
        for key, launched in launched_by_batch(state, fleet.removesuffix("_hosts")).items()
        if launched and not launched & live
    }
    replace: list[str] = []
    fallbacks: list[str] = []
    for address in sorted(short):
        fleet = address.split(".")[1].split("[")[0]
        if fleet not in topped_up:
            replace.append(address)
        elif address in lost:
            (fallbacks if address.endswith(f'["{FALLBACK_KEY}"]') else replace).append(address)
    renewed = {a.split("[")[0] for a in replace}
    replace += [a for a in fallbacks if a.split("[")[0] not in renewed]
    return sorted(replace)
