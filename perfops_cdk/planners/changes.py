"""A plan in a few lines: what changes per stack and deployment, instead of the whole
Terraform plan (``--verbose`` prints that). Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import attrs

from perfops_cdk.planners.folding import fold
from perfops_cdk.planners.stacks import REGION, Unit
from perfops_cdk.props.regions import regions_text

_ADDRESS = re.compile(r'^(?P<type>[a-z0-9_]+)\.(?P<logical>[^.\[]+)(\["(?P<key>[^"]*)"\])?')
_ACTIONS = ("create", "replace", "update", "delete")
_VERBS = {"create": "create", "replace": "replace", "update": "update", "delete": "destroy"}
# Our resources are named "<deployment>_<suffix>", the suffix without "_".
_KIND = {"aws_ec2_fleet": "fleet", "aws_security_group": "group", "aws_launch_template": "template"}


def _deployment(logical: str) -> str:
    name, sep, _ = logical.rpartition("_")
    return name if sep else logical


Counts = dict[str, int]  # action -> resources


def _per_owner(unit: Unit, changes: Iterable[tuple[str, str]]) -> dict[str, tuple[Counts, int]]:
    """Per deployment (``-`` outside region stacks): resources per action, hosts launched."""
    batches = {g.deployment: g.batches for g in unit.groups}
    per: dict[str, Counts] = {}
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
    return {owner: (per[owner], hosts.get(owner, 0)) for owner in sorted(per)}


def _line(where: str, owner: str, counts: Counts, hosts: int) -> str:
    parts = [f"{_VERBS[a]} {counts[a]}" for a in _ACTIONS if counts.get(a)]
    launched = f"; launches {hosts} host(s)" if hosts else ""
    return f"{where}  {owner}: {', '.join(parts)}{launched}"


def describe(unit: Unit, changes: Iterable[tuple[str, str]]) -> list[str]:
    """``(address, action)`` pairs of one unit's plan as lines per deployment."""
    return [_line(unit.name, o, c, h) for o, (c, h) in _per_owner(unit, changes).items()]


@attrs.frozen
class _Entry:
    """One deployment's changes in one unit (or several regions, folded); no owner:
    a unit with no deployment to name, said by its totals."""

    unit: Unit
    owner: str
    counts: Counts
    hosts: int
    regions: tuple[str, ...] = ()
    totals: str = ""


def _kinds(entry: _Entry) -> tuple[object, ...] | None:
    unit = entry.unit
    if unit.kind != REGION or not unit.region or not entry.owner:
        return None
    return (unit.app_stack, entry.owner, tuple(a for a in _ACTIONS if entry.counts.get(a)))


def _summed(same: Sequence[_Entry]) -> _Entry:
    return attrs.evolve(
        same[0],
        counts={a: sum(e.counts.get(a, 0) for e in same) for a in _ACTIONS},
        hosts=sum(e.hosts for e in same),
        regions=tuple(e.unit.region or "" for e in same),
    )


def summary(plans: Sequence[tuple[Unit, Sequence[tuple[str, str]]]]) -> list[str]:
    """The lines to confirm for several units' plans: a deployment whose region stacks
    change alike (the same kinds of change) in EVERY_REGION_FROM regions or more is one
    line over them, its counts and hosts summed; every other change keeps its unit's
    line, and a unit with no deployment to name its totals."""
    entries = []
    for unit, pairs in plans:
        owners = _per_owner(unit, pairs)
        if not owners:
            entries.append(_Entry(unit, "", {}, 0, totals=totals(pairs)))
        entries += [_Entry(unit, o, c, h) for o, (c, h) in owners.items()]
    lines = []
    for entry in fold(entries, _kinds, _summed):
        stack = entry.unit.app_stack
        if not entry.owner:
            lines.append(f"{entry.unit.name}: {entry.totals}")
        elif entry.regions:
            where = f"{stack} in {_regions(entry.regions, [u for u, _ in plans], stack)}"
            lines.append(_line(where, entry.owner, entry.counts, entry.hosts))
        else:
            lines.append(_line(entry.unit.name, entry.owner, entry.counts, entry.hosts))
    return lines


def _regions(where: Sequence[str], units: Sequence[Unit], stack: str | None) -> str:
    """``where`` said against the regions of ``stack``'s region stacks among ``units``."""
    among = [u.region for u in units if u.app_stack == stack and u.kind == REGION and u.region]
    return regions_text(where, among)


def totals(changes: Sequence[tuple[str, str]]) -> str:
    """``3 to create, 1 to replace, ...`` over resources (not fleet bookkeeping)."""
    counts: dict[str, int] = {}
    for address, action in changes:
        if address.startswith("terraform_data.") or action not in _ACTIONS:
            continue
        counts[action] = counts.get(action, 0) + 1
    return ", ".join(f"{counts[a]} to {_VERBS[a]}" for a in _ACTIONS if counts.get(a)) or "none"


@attrs.frozen
class Done:
    """What one unit's apply or destroy did (or several region stacks', folded)."""

    unit: Unit
    added: int
    changed: int
    removed: int
    seconds: float
    regions: tuple[str, ...] = ()
    slowest: float = 0.0

    def counts(self) -> str:
        return f"{self.added} added, {self.changed} changed, {self.removed} destroyed"


def _did(done: Done) -> tuple[object, ...] | None:
    unit = done.unit
    if unit.kind != REGION or not unit.region:
        return None
    return (unit.app_stack, bool(done.added), bool(done.changed), bool(done.removed))


def _together(same: Sequence[Done]) -> Done:
    return attrs.evolve(
        same[0],
        added=sum(d.added for d in same),
        changed=sum(d.changed for d in same),
        removed=sum(d.removed for d in same),
        seconds=min(d.seconds for d in same),
        slowest=max(d.seconds for d in same),
        regions=tuple(d.unit.region or "" for d in same),
    )


def outcomes(done: Sequence[Done], units: Sequence[Unit]) -> list[str]:
    """One line per unit that did something; region stacks of one app stack that did
    the same kinds of change (added, changed, destroyed) in EVERY_REGION_FROM regions
    or more are one line, counts summed and their times as a range. ``units`` are all
    of the run's units, to say ``every region`` only when no region stack sat out."""
    lines = []
    for entry in fold(done, _did, _together):
        if not entry.regions:
            lines.append(f"{entry.unit.name}: {entry.counts()} ({entry.seconds:.0f} s)")
            continue
        stack = entry.unit.app_stack
        fastest, slowest = f"{entry.seconds:.0f}", f"{entry.slowest:.0f}"
        span = fastest if fastest == slowest else f"{fastest}-{slowest}"
        where = _regions(entry.regions, units, stack)
        lines.append(f"{stack} in {where}: {entry.counts()} ({span} s each)")
    return lines
