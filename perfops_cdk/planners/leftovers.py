"""Which of a stack's tagged AWS resources Terraform does not know: pure functions.

A ``kill -9`` between an AWS create call and Terraform writing its state leaves a
resource that carries the deployer's tags but is in no state: an orphan. The rule
(docs/operations.md): orphans are *removed*, never adopted. Whatever a killed run
created may not match the declaration any more; removing it and letting Terraform
create what is declared is the same simple step for every kind of resource, and it
only ever touches resources tagged with this deployer's uuid and this stack.
"""

from __future__ import annotations

import json
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


# What a region stack's state may hold for perfops to destroy it without Terraform:
# each type by the kind ``effects/ec2_fleet.remove`` deletes, or bookkeeping only.
REMOVED_AS = {
    "aws_ec2_fleet": "fleet",
    "aws_launch_template": "launch-template",
    "aws_security_group": "security-group",
}
BOOKKEEPING = frozenset({"terraform_data"})


@attrs.frozen
class Teardown:
    """A region stack that perfops can empty itself: what AWS holds of it by id (the
    fleets with the instances they launched, templates, groups) and the addresses
    Terraform would report destroyed."""

    resources: tuple[Resource, ...]
    addresses: tuple[str, ...]
    read_as: tuple[str, int] | None = None  # the state's lineage and serial when read


def teardown(state: Mapping[str, Any], region: str) -> Teardown | None:
    """The state's resources to delete through the API, or None when it holds anything
    else (a resource a user added to the region stack): Terraform destroys those."""
    resources: list[Resource] = []
    addresses: list[str] = []
    for resource in state.get("resources", []):
        if resource.get("mode") != "managed":
            continue
        kind = REMOVED_AS.get(resource.get("type", ""))
        if kind is None and resource.get("type") not in BOOKKEEPING:
            return None
        address = f"{resource.get('type')}.{resource.get('name')}"
        for instance in resource.get("instances", []):
            key = instance.get("index_key")
            addresses.append(address if key is None else f"{address}[{json.dumps(key)}]")
            attributes = instance.get("attributes") or {}
            if kind is None:
                continue
            if not isinstance(attributes.get("id"), str):
                return None
            resources.append(Resource(region=region, kind=kind, id=attributes["id"]))
            for launched in attributes.get("fleet_instance_set") or []:
                for instance_id in launched.get("instance_ids") or []:
                    resources.append(Resource(region=region, kind="instance", id=instance_id))
    return Teardown(
        resources=tuple(sort(resources)), addresses=tuple(addresses), read_as=version(state)
    )


def version(state: Mapping[str, Any]) -> tuple[str, int] | None:
    """A Terraform state's lineage and serial (None for no state): what a later write
    of it compares."""
    if not state:
        return None
    return str(state.get("lineage", "")), int(state.get("serial", 0))


def guarded(config: Mapping[str, Any]) -> bool:
    """Whether a stack's JSON sets ``prevent_destroy`` on any resource: Terraform
    refuses to destroy it, and so must perfops."""
    for blocks in (config.get("resource") or {}).values():
        for body in blocks.values():
            if (body.get("lifecycle") or {}).get("prevent_destroy"):
                return True
    return False


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
