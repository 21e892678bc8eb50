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

    @property
    def short(self) -> int:
        return max(0, self.declared - self.live)

    @property
    def fallback_needed(self) -> int:
        """The on-demand fallback this deployment should have (0 without fallback)."""
        if not self.fallback_allowed:
            return 0
        return max(0, self.declared - self.from_batches)

    def line(self) -> str:
        types = ", ".join(f"{n} {t}" for t, n in self.by_type) or "none"
        head = f"{self.region} {self.deployment}: {self.live} of {self.declared} live ({types}"
        head += f"; {self.spot} spot)" if self.spot else ")"
        if self.fallback:
            head += f"; {self.fallback} on-demand as fallback for spot"
        if self.short and not self.fallback_allowed:
            head += f"; {self.short} short: EC2 had no capacity, the next deploy retries"
        elif self.short:
            head += f"; {self.short} short"
        return head


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
    )
