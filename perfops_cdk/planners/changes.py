"""A plan in a few lines: what changes per stack and deployment, instead of the whole
Terraform plan (``--verbose`` prints that). Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from perfops_cdk.planners.stacks import Unit

_ADDRESS = re.compile(r'^(?P<type>[a-z0-9_]+)\.(?P<logical>[^.\[]+)(\["(?P<key>[^"]*)"\])?')
_ACTIONS = ("create", "replace", "update", "delete")
_VERBS = {"create": "create", "replace": "replace", "update": "update", "delete": "destroy"}
# Our resources are named "<deployment>_<suffix>", the suffix without "_".
_KIND = {"aws_ec2_fleet": "fleet", "aws_security_group": "group", "aws_launch_template": "template"}


def _deployment(logical: str) -> str:
    name, sep, _ = logical.rpartition("_")
    return name if sep else logical


def describe(unit: Unit, changes: Iterable[tuple[str, str]]) -> list[str]:
    """``(address, action)`` pairs of one unit's plan as lines per deployment."""
    batches = {g.deployment: g.batches for g in unit.groups}
    per: dict[str, dict[str, int]] = {}
    hosts: dict[str, int] = {}
    for address, action in changes:
        match = _ADDRESS.match(address)
        if match is None or action not in _ACTIONS:
            continue
        if match["type"] == "terraform_data":
            continue  # bookkeeping of fleets, not infrastructure
        owner = _deployment(match["logical"]) if unit.groups or unit.region else "-"
        counts = per.setdefault(owner, {})
        counts[action] = counts.get(action, 0) + 1
        if match["type"] == "aws_ec2_fleet" and action in ("create", "replace"):
            hosts[owner] = hosts.get(owner, 0) + batches.get(owner, {}).get(match["key"] or "", 0)
    lines = []
    for owner in sorted(per):
        counts = per[owner]
        parts = [f"{_VERBS[a]} {counts[a]}" for a in _ACTIONS if counts.get(a)]
        launched = f"; launches {hosts[owner]} host(s)" if hosts.get(owner) else ""
        lines.append(f"{unit.name}  {owner}: {', '.join(parts)}{launched}")
    return lines


def totals(changes: Sequence[tuple[str, str]]) -> str:
    """``3 to create, 1 to replace, ...`` over resources (not fleet bookkeeping)."""
    counts: dict[str, int] = {}
    for address, action in changes:
        if address.startswith("terraform_data.") or action not in _ACTIONS:
            continue
        counts[action] = counts.get(action, 0) + 1
    return ", ".join(f"{counts[a]} to {_VERBS[a]}" for a in _ACTIONS if counts.get(a)) or "none"
