"""What is declared versus what runs: the rows of ``perfops status``, pure.

Declared host groups come from the synthesized region stacks (planners/stacks.py);
live hosts from EC2 by the deployer's tags. Hosts that run under the deployer's uuid
but that no current declaration accounts for (a region dropped, a deployment renamed,
a stack removed, an orphan of a crash) get rows of their own marked "not declared":
they bill all the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import attrs

from perfops_cdk.planners.folding import fold
from perfops_cdk.planners.lifetime import expires_at, time_left
from perfops_cdk.planners.stacks import HostGroup

LIVE_STATES = frozenset({"pending", "running"})


@attrs.frozen
class Host:
    """An instance as EC2 reports it, with the tags that place it."""

    instance_id: str
    region: str
    app_stack: str
    deployment: str
    state: str
    ami: str
    instance_type: str
    lifecycle: str = "on-demand"  # or "spot"
    availability_zone: str = ""
    launch_time: str = ""
    public_ip: str = ""
    private_ip: str = ""
    containers: int = 0
    lifetime: str | None = None  # the perf-ops:lifetime tag

    @property
    def expires(self) -> datetime | None:
        """When the host terminates itself (launch time + lifetime), if it has a lifetime."""
        try:
            launched = datetime.fromisoformat(self.launch_time)
        except ValueError:
            return None
        return expires_at(launched, self.lifetime)


@attrs.frozen
class StatusRow:
    app_stack: str
    deployment: str
    region: str
    planned: int
    running: int
    ami: str
    instance_ids: tuple[str, ...]
    security_groups: tuple[str, ...] = ()
    containers_per_host: int = 0
    market: str = "on-demand"
    instance_types: tuple[str, ...] = ()
    spot: int = 0
    declared: bool = True
    left: timedelta | None = None  # until the first live host's lifetime is over
    regions: tuple[str, ...] = ()  # a row folded over several regions (folded())

    @property
    def containers_planned(self) -> int:
        """Load-client containers across this row's planned hosts."""
        return self.planned * self.containers_per_host

    @property
    def live(self) -> int:
        """Hosts running or starting."""
        return len(self.instance_ids)

    @property
    def matches(self) -> bool:
        """Reality is the declaration: every planned host live, nothing undeclared."""
        return self.live == self.planned and self.running == self.planned


def status_rows(
    groups: Iterable[HostGroup], hosts: Iterable[Host], now: datetime | None = None
) -> list[StatusRow]:
    """Join declared groups and live hosts per stack, deployment and region; with
    ``now``, each row has the time left of its first host to expire."""
    by_key: dict[tuple[str, str, str], list[Host]] = {}
    for host in hosts:
        if host.state in LIVE_STATES:
            by_key.setdefault((host.app_stack, host.deployment, host.region), []).append(host)
    rows = []
    for group in groups:
        live = by_key.pop((group.app_stack, group.deployment, group.region), [])
        rows.append(_row(group.app_stack, group.deployment, group.region, live, group, now))
    for (app_stack, deployment, region), live in by_key.items():
        rows.append(_row(app_stack, deployment, region, live, None, now))
    return sorted(rows, key=lambda r: (r.app_stack, r.deployment, r.region, not r.declared))


def _row(
    app_stack: str,
    deployment: str,
    region: str,
    live: Sequence[Host],
    group: HostGroup | None,
    now: datetime | None,
) -> StatusRow:
    amis = sorted({h.ami for h in live})
    expiries = [e for e in (h.expires for h in live) if e is not None]
    return StatusRow(
        app_stack=app_stack,
        deployment=deployment,
        region=region,
        planned=group.hosts if group else 0,
        running=sum(1 for h in live if h.state == "running"),
        ami=group.ami if group else ", ".join(amis) or "-",
        instance_ids=tuple(sorted(h.instance_id for h in live)),
        security_groups=group.security_groups if group else (),
        containers_per_host=group.containers_per_host if group else 0,
        market=group.market if group else "-",
        instance_types=group.instance_types
        if group
        else tuple(sorted({h.instance_type for h in live})),
        spot=sum(1 for h in live if h.lifecycle == "spot"),
        declared=group is not None,
        left=time_left(min(expiries), now) if expiries and now else None,
    )


ONE_PER_REGION = "one per region"


def folded(rows: Sequence[StatusRow]) -> list[StatusRow]:
    """The rows as a terminal table shows them: a deployment declared alike (market,
    types, containers) and as declared (every host live and running) in
    EVERY_REGION_FROM regions or more is one row over them, its figures summed. A row
    that differs from its declaration, or that nothing declares, keeps its own."""
    return fold(rows, _likeness, _merged)


def _likeness(row: StatusRow) -> tuple[object, ...] | None:
    if not (row.declared and row.matches):
        return None
    return (
        row.app_stack,
        row.deployment,
        row.market,
        row.instance_types,
        row.containers_per_host,
        row.security_groups,
    )


def _merged(same: Sequence[StatusRow]) -> StatusRow:
    amis = {s.ami for s in same}
    lefts = [s.left for s in same if s.left is not None]
    return attrs.evolve(
        same[0],
        regions=tuple(s.region for s in same),
        planned=sum(s.planned for s in same),
        running=sum(s.running for s in same),
        instance_ids=tuple(i for s in same for i in s.instance_ids),
        ami=same[0].ami if len(amis) == 1 else ONE_PER_REGION,
        spot=sum(s.spot for s in same),
        left=min(lefts) if lefts else None,
    )


def drift(rows: Iterable[StatusRow]) -> bool:
    """True when reality differs from the declaration (``perfops status`` exits 1)."""
    return any(not r.matches for r in rows)
