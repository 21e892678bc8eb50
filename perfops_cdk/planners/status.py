"""What is declared versus what runs: the rows of ``perfops status``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from perfops_cdk.planners.containers import CONTAINERS_TAG


@attrs.frozen
class PlannedHosts:
    """One deployment's hosts in one region, as synthesized."""

    deployment: str
    region: str
    count: int
    ami: str
    instance_type: str
    uuid: str
    security_groups: tuple[str, ...]
    containers_per_host: int = 0


@attrs.frozen
class Host:
    """A running (or pending) instance as EC2 reports it."""

    instance_id: str
    region: str
    deployment: str
    state: str
    ami: str
    instance_type: str


@attrs.frozen
class StatusRow:
    deployment: str
    region: str
    planned: int
    running: int
    ami: str
    instance_ids: tuple[str, ...]
    security_groups: tuple[str, ...]
    containers_per_host: int = 0

    @property
    def containers_planned(self) -> int:
        """Load-client containers across this row's planned hosts."""
        return self.planned * self.containers_per_host


def planned_hosts(stack_json: Mapping[str, Any]) -> list[PlannedHosts]:
    """Read the hosts a synthesized stack declares (one ``aws_instance`` per region)."""
    providers = {
        f"aws.{p['alias']}": p["region"] for p in stack_json.get("provider", {}).get("aws", [])
    }
    resources = stack_json.get("resource", {})
    group_names = {
        logical: sg["name"] for logical, sg in resources.get("aws_security_group", {}).items()
    }
    planned = []
    for instance in resources.get("aws_instance", {}).values():
        tags = instance.get("tags", {})
        groups = tuple(
            group_names.get(ref.split(".")[1], ref)
            for ref in instance.get("vpc_security_group_ids", [])
        )
        planned.append(
            PlannedHosts(
                deployment=tags.get("deployment", "?"),
                region=providers.get(instance.get("provider", ""), "?"),
                count=int(instance.get("count", 1)),
                ami=instance.get("ami", "?"),
                instance_type=instance.get("instance_type", "?"),
                uuid=tags.get("perf-ops", "?"),
                security_groups=groups,
                containers_per_host=_count(tags.get(CONTAINERS_TAG)),
            )
        )
    return sorted(planned, key=lambda p: (p.deployment, p.region))


def _count(tag: Any) -> int:
    """A count from a tag value; 0 when absent or not a number (e.g. set by hand)."""
    try:
        return max(0, int(tag))
    except (TypeError, ValueError):
        return 0


LIVE_STATES = frozenset({"pending", "running"})


def status_rows(planned: Iterable[PlannedHosts], hosts: Iterable[Host]) -> list[StatusRow]:
    """Join declared and live hosts per deployment and region."""
    by_key: dict[tuple[str, str], list[Host]] = {}
    for host in hosts:
        if host.state in LIVE_STATES:
            by_key.setdefault((host.deployment, host.region), []).append(host)
    rows = []
    for plan in planned:
        live = by_key.get((plan.deployment, plan.region), [])
        rows.append(
            StatusRow(
                deployment=plan.deployment,
                region=plan.region,
                planned=plan.count,
                running=sum(1 for h in live if h.state == "running"),
                ami=plan.ami,
                instance_ids=tuple(sorted(h.instance_id for h in live)),
                security_groups=plan.security_groups,
                containers_per_host=plan.containers_per_host,
            )
        )
    return rows
