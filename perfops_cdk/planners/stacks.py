"""A synthesized project read as units of work: pure functions over cdktf.out's JSON.

Every stack in ``manifest.json`` is a unit: a PerfOpsStack's region stacks (its
hosts), the PerfOpsStack itself (what users add to it), other cdktf stacks of the app,
and tombstones: region stacks the ledger remembers but the app no longer synthesizes
(a stack removed from the app), which must still be emptied.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from perfops_cdk.errors import PerfOpsError
from perfops_cdk.props.regions import EVERY_REGION_FROM

REGION, APP, PLAIN, TOMBSTONE = "region", "app", "plain", "tombstone"


@attrs.frozen
class HostGroup:
    """One deployment's hosts in one region, as synthesized (the region note)."""

    app_stack: str
    deployment: str
    region: str
    uuid: str
    hosts: int
    ami: str
    image: str
    image_path: str
    prebuilt_image: bool
    instance_types: tuple[str, ...]
    market: str
    on_demand_hosts: int
    fallback_to_on_demand: bool
    max_price: str | None
    root_volume_gib: int
    root_volume_type: str
    security_groups: tuple[str, ...]
    containers_per_host: int
    batches: dict[str, int] = attrs.field(factory=dict, eq=False)
    lifetime: str | None = None  # the hosts' perf-ops:lifetime tag, e.g. "8h"
    fallback_hosts: int = 0

    @classmethod
    def from_note(cls, app_stack: str, region: str, uuid: str, name: str, raw: Any) -> HostGroup:
        return cls(
            app_stack=app_stack,
            deployment=name,
            region=region,
            uuid=uuid,
            hosts=int(raw["hosts"]),
            ami=raw["ami"],
            image=raw.get("image", "?"),
            image_path=raw.get("image_path", "?"),
            prebuilt_image=bool(raw.get("prebuilt_image", False)),
            instance_types=tuple(raw["instance_types"]),
            market=raw.get("market", "on-demand"),
            on_demand_hosts=int(raw.get("on_demand_hosts", raw["hosts"])),
            fallback_to_on_demand=bool(raw.get("fallback_to_on_demand", False)),
            max_price=raw.get("max_price"),
            root_volume_gib=int(raw.get("root_volume_gib", 0)),
            root_volume_type=raw.get("root_volume_type", "gp3"),
            security_groups=tuple(raw.get("security_groups", ())),
            containers_per_host=int(raw.get("containers_per_host", 0)),
            batches={str(k): int(v) for k, v in (raw.get("batches") or {}).items()},
            lifetime=raw.get("lifetime"),
            fallback_hosts=int(raw.get("fallback_hosts", 0)),
        )


@attrs.frozen
class Unit:
    """One Terraform working directory perfops runs: what it is and what it holds."""

    name: str
    kind: str
    app_stack: str | None = None
    region: str | None = None
    uuid: str | None = None
    state_dir: str | None = None  # relative to the stack's working directory
    dependencies: tuple[str, ...] = ()
    groups: tuple[HostGroup, ...] = ()
    has_content: bool = True

    @property
    def hosts(self) -> int:
        return sum(g.hosts for g in self.groups)

    @property
    def weight(self) -> int:
        """Roughly how much Terraform has to do here, to start the heaviest units
        first: each deployment's blocks (its security groups, its fleets, the launch
        template, the spec and three data sources). Other stacks count 0."""
        return sum(len(g.security_groups) + len(g.batches) + 5 for g in self.groups)


def _content(stack_json: Mapping[str, Any]) -> bool:
    """Anything for Terraform to manage (a stack of only a backend has nothing)."""
    return any(stack_json.get(k) for k in ("resource", "data", "module", "output", "provider"))


def read_units(manifest: Mapping[str, Any], stacks: Mapping[str, Mapping[str, Any]]) -> list[Unit]:
    """The units of a synthesized app: ``manifest.json`` and each stack's JSON by name."""
    units = []
    entries = manifest.get("stacks", {})
    # cdktf lists a dependency by construct path: a region stack (nested in its
    # PerfOpsStack) is "perf-ops/perf-ops-eu-west-1", its name "perf-ops-eu-west-1".
    by_path = {entry.get("constructPath", name): name for name, entry in entries.items()}
    for name, entry in sorted(entries.items()):
        stack_json = stacks[name]
        note = stack_json.get("//", {}).get("perfops") or {}
        dependencies = tuple(by_path.get(d, d) for d in entry.get("dependencies", ()))
        kind = note.get("kind")
        if kind == REGION:
            app_stack, region, uuid = note["app_stack"], note["region"], note["uuid"]
            groups = tuple(
                HostGroup.from_note(app_stack, region, uuid, deployment, raw)
                for deployment, raw in sorted(note.get("deployments", {}).items())
            )
            units.append(
                Unit(
                    name=name,
                    kind=REGION,
                    app_stack=app_stack,
                    region=region,
                    uuid=uuid,
                    state_dir=note.get("state_dir"),
                    dependencies=dependencies,
                    groups=groups,
                )
            )
        elif kind == APP:
            units.append(
                Unit(
                    name=name,
                    kind=APP,
                    app_stack=name,
                    uuid=note.get("uuid"),
                    state_dir=note.get("state_dir"),
                    dependencies=dependencies,
                    has_content=_content(stack_json),
                )
            )
        else:
            units.append(Unit(name=name, kind=PLAIN, dependencies=dependencies))
    return units


def tombstones(
    recorded: Iterable[tuple[str, str, str, str]],
    units: Sequence[Unit],
    uuid_of: Mapping[str, str],
) -> list[Unit]:
    """Region stacks the ledger remembers (``(name, app_stack, region, uuid)``) that the
    app no longer synthesizes: each must still be emptied by Terraform."""
    present = {u.name for u in units}
    return [
        Unit(
            name=name,
            kind=TOMBSTONE,
            app_stack=app_stack,
            region=region,
            uuid=uuid or uuid_of.get(app_stack),
        )
        for name, app_stack, region, uuid in sorted(recorded)
        if name not in present
    ]


def select(units: Sequence[Unit], stack: str | None) -> list[Unit]:
    """The units ``--stack`` names: a stack by its name, or a PerfOpsStack with all its
    region stacks. Unknown names are one line listing what exists."""
    if stack is None:
        return list(units)
    chosen = [u for u in units if stack in (u.name, u.app_stack)]
    if chosen:
        return chosen
    known = sorted({u.app_stack or u.name for u in units} | {u.name for u in units})
    close = difflib.get_close_matches(stack, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise PerfOpsError(
        f"--stack: {stack!r} is not a stack of this app; known: {', '.join(known)}{hint}"
    )


def names_text(units: Sequence[Unit]) -> str:
    """Units as a progress line names them: by name, but the region stacks of a
    PerfOpsStack in EVERY_REGION_FROM regions or more as one ``perf-ops in 17 regions``
    (each region reports its own line later)."""
    regions: dict[str, int] = {}
    for unit in units:
        if unit.kind in (REGION, TOMBSTONE) and unit.app_stack:
            regions[unit.app_stack] = regions.get(unit.app_stack, 0) + 1
    parts: dict[str, None] = {}
    for unit in units:
        count = regions.get(unit.app_stack or "", 0) if unit.kind in (REGION, TOMBSTONE) else 0
        many = count >= EVERY_REGION_FROM
        parts[f"{unit.app_stack} in {count} regions" if many else unit.name] = None
    return ", ".join(parts)


def waves(units: Sequence[Unit], *, reverse: bool = False) -> list[list[Unit]]:
    """Units grouped so each wave depends only on earlier ones (later ones when
    ``reverse``, for destroying); units of one wave run concurrently."""
    by_name = {u.name: u for u in units}
    pending = dict(by_name)
    done: set[str] = set()
    ordered: list[list[Unit]] = []
    while pending:
        ready = [
            u
            for u in pending.values()
            if all(d in done or d not in by_name for d in u.dependencies)
        ]
        if not ready:  # a cycle cdktf would have refused; run the rest together
            ready = list(pending.values())
        ordered.append(sorted(ready, key=lambda u: u.name))
        for unit in ready:
            done.add(unit.name)
            del pending[unit.name]
    return list(reversed(ordered)) if reverse else ordered
