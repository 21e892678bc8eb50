"""A synthesized project as units of work: stacks, their workspaces, ledgers, tombstones."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs

from perfops_cdk.effects import ledger
from perfops_cdk.effects.aws import endpoint_url
from perfops_cdk.effects.ledger import state_dir_for
from perfops_cdk.effects.terraform import Workspace
from perfops_cdk.planners import stacks as plan
from perfops_cdk.planners.stacks import Unit
from perfops_cdk.project import Project

T = TypeVar("T")
R = TypeVar("R")
DEFAULT_PARALLEL = 4  # Terraform runs at once: ~700 MB each with its provider
# Read-only AWS look-ups at once (one per default region): latency-bound, light.
READ_PARALLEL = 17


@attrs.frozen
class Loaded:
    """What ``cdktf.out`` holds, with the ledgers that remember more."""

    project: Project
    units: tuple[Unit, ...]  # every unit, tombstones included
    ledgers: dict[str, Path]  # app stack -> its ledger file
    entries: dict[str, ledger.RegionStack] = attrs.field(factory=dict)  # by stack name

    def ledger_for(self, unit: Unit) -> Path | None:
        return self.ledgers.get(unit.app_stack or "")

    def workspace(self, unit: Unit) -> Workspace:
        return Workspace(
            self.project.stack_dir(unit.name),
            self.project.root,
            log_dir=self.project.root / ".perfops" / "logs",
        )

    def digest(self, unit: Unit) -> str:
        """A fingerprint of the unit's synthesized Terraform JSON."""
        data = (self.project.stack_dir(unit.name) / "cdk.tf.json").read_bytes()
        return hashlib.sha256(data).hexdigest()

    def applied(self, unit: Unit) -> str:
        """The fingerprint of the JSON last applied cleanly ("" if unknown)."""
        path = self.ledger_for(unit)
        entry = ledger.load(path).stacks.get(unit.name) if path else None
        return entry.applied if entry else ""

    def app_stacks(self) -> list[str]:
        return sorted({u.app_stack for u in self.units if u.app_stack})


def load(project: Project) -> Loaded:
    """Read the last synthesis, and turn every ledger entry the app no longer
    synthesizes into a tombstone stack that Terraform can still destroy."""
    manifest = json.loads((project.outdir / "manifest.json").read_text())
    jsons = {name: project.stack_json(name) for name in manifest.get("stacks", {})}
    units = plan.read_units(manifest, jsons)
    ledgers: dict[str, Path] = {}
    for unit in units:
        if unit.kind in (plan.APP, plan.REGION) and unit.app_stack and unit.state_dir:
            state_dir = (project.stack_dir(unit.name) / unit.state_dir).resolve()
            ledgers.setdefault(unit.app_stack, state_dir / ledger.LEDGER_FILE)
    default = state_dir_for(project.root, endpoint_url()) / ledger.LEDGER_FILE
    files = {*ledgers.values(), default}
    recorded: list[tuple[str, str, str, str]] = []
    entries: dict[str, ledger.RegionStack] = {}
    for path in sorted(files):
        for entry in ledger.load(path).stacks.values():
            recorded.append((entry.name, entry.app_stack, entry.region, entry.uuid))
            entries[entry.name] = entry
            ledgers.setdefault(entry.app_stack, path)
    uuid_of = {u.app_stack: u.uuid for u in units if u.app_stack and u.uuid}
    dead = plan.tombstones(recorded, units, uuid_of)
    return Loaded(project=project, units=(*units, *dead), ledgers=ledgers, entries=entries)


def _write_tombstone(project: Project, entry: ledger.RegionStack) -> None:
    """A stack of only the backend and provider a region stack had: applying it
    destroys whatever its state still holds."""
    if not entry.terraform:
        return
    folder = project.stack_dir(entry.name)
    folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {"terraform": entry.terraform, "provider": entry.provider}
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    target = folder / "cdk.tf.json"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def can_run(loaded: Loaded, unit: Unit) -> bool:
    """Whether Terraform can run the unit; a tombstone is written out first, from the
    blocks ``perfops deploy`` recorded for it (none if perfops never deployed it)."""
    if unit.kind == plan.TOMBSTONE and unit.name in loaded.entries:
        _write_tombstone(loaded.project, loaded.entries[unit.name])
    return (loaded.project.stack_dir(unit.name) / "cdk.tf.json").is_file()


def record_blocks(loaded: Loaded, unit: Unit) -> None:
    """Remember the backend and provider of a region stack before Terraform touches it."""
    path = loaded.ledger_for(unit)
    if path is None or unit.kind != plan.REGION:
        return
    config = loaded.project.stack_json(unit.name)
    ledger.update(
        path,
        unit.name,
        terraform=config.get("terraform", {}),
        provider=config.get("provider", {}),
    )


def concurrently(
    items: Sequence[T],
    work: Callable[[T], R],
    parallel: int = DEFAULT_PARALLEL,
    *,
    weight: Callable[[T], int] | None = None,
) -> list[R]:
    """``work`` on every item, at most ``parallel`` at once; results in item order.
    With ``weight``, the heaviest items start first (ties in item order): a heavy item
    started last would run alone at the end while the other workers stand idle.

    ``work`` must not raise: a failure of one item is part of its result, so one
    region's failure never stops the others.
    """
    if not items:
        return []
    order = list(range(len(items)))
    if weight is not None:
        weights = [weight(item) for item in items]
        order.sort(key=lambda index: -weights[index])
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(items)))) as pool:
        done = dict(zip(order, pool.map(work, [items[i] for i in order]), strict=True))
    return [done[index] for index in range(len(items))]


@contextmanager
def turn(gate: threading.Semaphore, waited: list[float]) -> Iterator[None]:
    """Hold ``gate`` for a Terraform run, adding the seconds spent waiting for it to
    ``waited``: a unit reports its own time, not its place in the queue."""
    queued = time.monotonic()
    with gate:
        waited.append(time.monotonic() - queued)
        yield


def regions_of(units: Iterable[Unit]) -> list[tuple[str, str, str]]:
    """(uuid, app stack, region) of every region or tombstone unit."""
    return sorted(
        {
            (u.uuid, u.app_stack, u.region)
            for u in units
            if u.kind in (plan.REGION, plan.TOMBSTONE) and u.uuid and u.app_stack and u.region
        }
    )
