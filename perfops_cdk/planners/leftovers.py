"""Which of a stack's tagged AWS resources Terraform does not know: pure functions.

A ``kill -9`` between an AWS create call and Terraform writing its state leaves a
resource that carries the deployer's tags but is in no state: an orphan. The rule
(docs/operations.md): orphans are *removed*, never adopted. Whatever a killed run
created may not match the declaration any more; removing it and letting Terraform
create what is declared is the same simple step for every kind of resource, and it
only ever touches resources tagged with this deployer's uuid and this stack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

# Removal order: what holds others first (fleets hold instances; instances hold
# groups and volumes), so each delete can succeed.
KINDS = ("fleet", "spot-request", "instance", "launch-template", "security-group", "volume")
LIVE_INSTANCE_STATES = frozenset({"pending", "running", "stopping", "stopped", "shutting-down"})


@attrs.frozen
class Resource:
    """A resource found in AWS by the deployer's and the stack's tags."""

    region: str
    kind: str
    id: str
    state: str = ""
    name: str = ""  # the Name tag; for a security group, its group name
    deployment: str = ""
    tags: dict[str, str] = attrs.field(factory=dict, eq=False, repr=False)

    def line(self) -> str:
        extra = f" {self.name}" if self.name else ""
        owner = f" (deployment {self.deployment})" if self.deployment else ""
        state = f" [{self.state}]" if self.state else ""
        return f"{self.region} {self.kind} {self.id}{extra}{owner}{state}"


def known_ids(state: Mapping[str, Any]) -> set[str]:
    """Every AWS id a Terraform state (``terraform state pull``) records, including the
    instances each fleet launched."""
    ids: set[str] = set()
    for resource in state.get("resources", []):
        if resource.get("mode") != "managed":
            continue
        for instance in resource.get("instances", []):
            attributes = instance.get("attributes") or {}
            if isinstance(attributes.get("id"), str):
                ids.add(attributes["id"])
            for launched in attributes.get("fleet_instance_set") or []:
                ids.update(launched.get("instance_ids") or [])
    return ids


def orphans(found: Iterable[Resource], known: set[str]) -> list[Resource]:
    """Resources no state records. An attached volume goes with its instance; an
    unattached one is always a leak (root volumes are deleted with their host)."""
    result = []
    for item in found:
        if item.kind == "volume":
            if item.state == "available":
                result.append(item)
        elif item.id not in known:
            result.append(item)
    return sort(result)


def sort(resources: Iterable[Resource]) -> list[Resource]:
    """In removal order (see KINDS), then by region and id."""
    return sorted(resources, key=lambda r: (KINDS.index(r.kind), r.region, r.id))


def still_billing(found: Iterable[Resource]) -> list[Resource]:
    """After a destroy: everything but what AWS keeps for a while after deletion."""
    return sort(r for r in found if r.kind != "volume" or r.state != "deleting")


def short_fleets(state: Mapping[str, Any], live: set[str], wanted: Mapping[str, int]) -> list[str]:
    """Addresses of fleets in a state with fewer live hosts than they launched or than
    the declaration asks (``wanted``: address -> hosts): a host terminated, a spot host
    reclaimed, capacity that ran out. An instant fleet never refills, so the repair is
    to replace it."""
    short = []
    for resource in state.get("resources", []):
        if resource.get("mode") != "managed" or resource.get("type") != "aws_ec2_fleet":
            continue
        for instance in resource.get("instances", []):
            attributes = instance.get("attributes") or {}
            launched = {
                i
                for s in attributes.get("fleet_instance_set") or []
                for i in s.get("instance_ids") or []
            }
            key = instance.get("index_key")
            suffix = f'["{key}"]' if isinstance(key, str) else f"[{key}]" if key is not None else ""
            address = f"aws_ec2_fleet.{resource['name']}{suffix}"
            if len(launched & live) < max(wanted.get(address, 0), len(launched)):
                short.append(address)
    return sorted(short)


def matches(groups: Iterable[Any], found: Iterable[Resource]) -> bool:
    """AWS holds what the groups declare: each deployment's live hosts and groups."""
    items = list(found)
    for group in groups:
        hosts = sum(
            1
            for r in items
            if r.kind == "instance"
            and r.deployment == group.deployment
            and r.state in ("pending", "running")
        )
        names = {r.name for r in items if r.kind == "security-group"}
        if hosts != group.hosts or not set(group.security_groups) <= names:
            return False
    return True
