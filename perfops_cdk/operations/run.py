"""``perfops deploy`` and ``perfops destroy``: every stack planned, confirmed once, applied.

Each unit (a region stack, a PerfOpsStack, another cdktf stack, a tombstone) is one
Terraform working directory with its own state. Units run concurrently, at most
``parallel`` at once (each Terraform process starts one ~600 MB provider, so this is
also the memory bound), in waves that respect cdktf's stack dependencies. A unit that
fails is reported with its error and log; the others go on.

Crash safety: before applying, the resources tagged with the deployer's uuid and the
stack that no Terraform state records (what a killed run created) are listed with the
plan and removed before Terraform runs (planners/leftovers.py has the rule).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from perfops_cdk.effects import ec2_fleet, ec2_instances, ledger
from perfops_cdk.effects.terraform import Outcome, Plan
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.operations import preflight
from perfops_cdk.operations.loading import (
    DEFAULT_PARALLEL,
    Loaded,
    can_run,
    concurrently,
    load,
    record_blocks,
)
from perfops_cdk.planners import leftovers, stacks
from perfops_cdk.planners.capacity import Fulfilment, fulfilment
from perfops_cdk.planners.leftovers import Resource
from perfops_cdk.planners.stacks import Unit
from perfops_cdk.project import Project

Progress = Callable[[str], None]


@attrs.frozen
class UnitRun:
    """One unit's plan, what was removed before it, what its apply did, or its error."""

    unit: Unit
    plan: Plan | None = None
    orphans: tuple[Resource, ...] = ()
    replace: tuple[str, ...] = ()  # fleets that lost hosts, replaced to refill them
    skipped: bool = False  # unchanged since its last apply, and AWS matches it
    outcome: Outcome | None = None
    swept: tuple[str, ...] = ()
    error: str | None = None
    seconds: float = 0.0
    empty: bool = False  # the state holds nothing after the run
    capacity: tuple[Fulfilment, ...] = ()  # what each deployment got, after an apply
    retry: bool = False  # its on-demand fallback changed: apply once more

    @property
    def ok(self) -> bool:
        return self.error is None and not (self.outcome and self.outcome.errors)

    @property
    def changed(self) -> bool:
        return bool(self.plan and self.plan.changes) or bool(self.orphans)

    @property
    def log_hint(self) -> str:
        return f".perfops/logs/{self.unit.name}.log"


@attrs.frozen
class Report:
    """What a deploy or destroy did, per unit, and what AWS still holds."""

    runs: tuple[UnitRun, ...]
    cancelled: bool = False
    leftovers: tuple[Resource, ...] = ()
    swept: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs) and not self.leftovers and not self.cancelled

    @property
    def changes(self) -> bool:
        return any(r.changed for r in self.runs)


Confirm = Callable[[Report], bool]


@attrs.frozen
class Mode:
    """How a run goes: destroying or not, asking or not, trusting unchanged stacks."""

    destroy: bool = False
    auto_approve: bool = False
    full: bool = False  # run Terraform on every stack, even unchanged ones


def _units(loaded: Loaded, stack: str | None) -> list[Unit]:
    """The selected units, without PerfOpsStacks that hold only their backend."""
    return [u for u in stacks.select(loaded.units, stack) if u.kind != stacks.APP or u.has_content]


def _prepare(loaded: Loaded, unit: Unit, mode: Mode) -> UnitRun:
    """Init, read state, find orphans and lost hosts, plan: all before the confirmation.

    A region stack whose synthesized JSON is the one last applied cleanly, with no
    orphan, and whose hosts and groups AWS shows as declared, is skipped: Terraform
    would find nothing to do, and each Terraform run starts the provider several times
    (seconds of CPU each; docs/design.md).
    """
    started = time.monotonic()
    try:
        if not can_run(loaded, unit):
            return _unrunnable(loaded, unit)
        workspace = loaded.workspace(unit)
        record_blocks(loaded, unit)
        workspace.init()
        orphans: list[Resource] = []
        replace: list[str] = []
        if unit.region and unit.uuid and unit.app_stack and not mode.destroy:
            state = workspace.state()
            found = ec2_fleet.find(unit.region, unit.uuid, unit.app_stack)
            orphans = leftovers.orphans(found, leftovers.known_ids(state))
            live = {
                r.id for r in found if r.kind == "instance" and r.state in ("pending", "running")
            }
            # Spot with fallback: what spot could not give is topped up on demand after
            # the apply; any other short fleet is replaced, to try again.
            topped_up = {
                f"{g.deployment}_hosts"
                for g in unit.groups
                if g.market == "spot" and g.fallback_to_on_demand
            }
            wanted = {
                f'aws_ec2_fleet.{g.deployment}_hosts["{key}"]': hosts
                for g in unit.groups
                for key, hosts in g.batches.items()
            }
            replace = [
                address
                for address in leftovers.short_fleets(state, live, wanted)
                if address.split(".")[1].split("[")[0] not in topped_up
            ]
            unchanged = not mode.full and loaded.applied(unit) == loaded.digest(unit)
            if unchanged and not orphans and not replace and leftovers.matches(unit.groups, found):
                return UnitRun(unit=unit, skipped=True, seconds=time.monotonic() - started)
        planned = None
        if not mode.auto_approve:
            planned = workspace.plan(destroy=mode.destroy, replace=replace)
        return UnitRun(
            unit=unit,
            plan=planned,
            orphans=tuple(orphans),
            replace=tuple(replace),
            seconds=time.monotonic() - started,
        )
    except PerfOpsError as error:
        return UnitRun(unit=unit, error=str(error), seconds=time.monotonic() - started)


def _unrunnable(loaded: Loaded, unit: Unit) -> UnitRun:
    """A tombstone perfops never deployed: forget it if AWS holds nothing of it."""
    assert unit.region and unit.app_stack
    if unit.uuid:
        found = ec2_fleet.find(unit.region, unit.uuid, unit.app_stack)
        if not found:
            _forget(loaded, unit)
            return UnitRun(unit=unit, empty=True, skipped=True)
    return UnitRun(
        unit=unit,
        error=(
            f"stack {unit.app_stack!r} left the app but its {unit.region} stack was never "
            f"deployed by perfops, so its backend is unknown; put {unit.app_stack!r} back "
            f"and run: perfops destroy --stack {unit.app_stack}"
        ),
    )


def _apply(loaded: Loaded, prepared: UnitRun, mode: Mode) -> UnitRun:
    if prepared.error is not None or prepared.skipped:
        return prepared
    if not mode.auto_approve and not prepared.changed:
        return prepared
    started = time.monotonic()
    unit = prepared.unit
    try:
        swept: list[str] = []
        if prepared.orphans:
            swept = ec2_fleet.remove(prepared.orphans)
        workspace = loaded.workspace(unit)
        if mode.auto_approve:
            planned, outcome = workspace.apply_now(destroy=mode.destroy, replace=prepared.replace)
        else:
            assert prepared.plan is not None
            planned, outcome = prepared.plan, workspace.apply_plan(prepared.plan)
        empty = False
        if not outcome.errors and unit.kind in (stacks.REGION, stacks.TOMBSTONE):
            empty = not workspace.state().get("resources")
            # Forget a region stack once it is empty and nothing declared keeps it.
            if empty and (mode.destroy or not unit.groups):
                _forget(loaded, unit)
            elif not mode.destroy:
                _record_applied(loaded, unit)
        elif outcome.errors:
            _record_applied(loaded, unit, digest="")
        capacity: list[Fulfilment] = []
        retry = False
        if not outcome.errors and unit.kind == stacks.REGION and not mode.destroy:
            capacity, retry = _capacity(loaded, unit, workspace.state())
        return attrs.evolve(
            prepared,
            plan=planned,
            outcome=outcome,
            swept=tuple(swept),
            empty=empty,
            capacity=tuple(capacity),
            retry=retry,
            seconds=prepared.seconds + time.monotonic() - started,
        )
    except PerfOpsError as error:
        return attrs.evolve(prepared, error=str(error))


def _capacity(loaded: Loaded, unit: Unit, state: dict[str, Any]) -> tuple[list[Fulfilment], bool]:
    """What each deployment of the region got; records a changed on-demand fallback
    (True: the region must be synthesized and applied once more)."""
    if not unit.groups or not unit.region or not unit.uuid:
        return [], False
    hosts = ec2_instances.hosts(unit.region, unit.uuid)
    found = [fulfilment(g, state, hosts, g.fallback_hosts) for g in unit.groups]
    wanted = {f.deployment: f.fallback_needed for f in found if f.fallback_needed}
    if wanted == {f.deployment: f.fallback for f in found if f.fallback}:
        return found, False
    path = loaded.ledger_for(unit)
    if path is not None:
        ledger.update(path, unit.name, fallback=wanted, applied="")
    return found, True


def _record_applied(loaded: Loaded, unit: Unit, digest: str | None = None) -> None:
    path = loaded.ledger_for(unit)
    if path is not None and unit.kind == stacks.REGION:
        ledger.update(path, unit.name, applied=loaded.digest(unit) if digest is None else digest)


def _forget(loaded: Loaded, unit: Unit) -> None:
    path = loaded.ledger_for(unit)
    if path is not None:
        ledger.forget(path, [unit.name])


def _run(
    loaded: Loaded,
    units: Sequence[Unit],
    mode: Mode,
    *,
    confirm: Confirm | None,
    parallel: int,
    progress: Progress,
) -> Report:
    runs: list[UnitRun] = []
    waves = stacks.waves(units, reverse=mode.destroy)
    # Plans of later waves may read outputs of earlier ones, so with dependencies
    # each wave is planned and applied before the next; one confirmation covers all
    # of a dependency-free app (the usual case: region stacks only).
    for index, wave in enumerate(waves):
        progress(f"checking {len(wave)} stack(s): {', '.join(u.name for u in wave)}")
        prepared = concurrently(wave, lambda u: _prepare(loaded, u, mode), parallel)
        report = Report(runs=tuple(prepared))
        asks = index == 0 and not mode.auto_approve and report.changes
        if asks and (confirm is None or not confirm(report)):
            return Report(runs=tuple(runs + prepared), cancelled=True)
        busy = [p.unit.name for p in prepared if p.error is None and not p.skipped]
        if busy and (mode.auto_approve or report.changes):
            progress(f"applying {', '.join(busy)}")
        runs.extend(concurrently(prepared, lambda p: _apply(loaded, p, mode), parallel))
    return Report(runs=tuple(runs))


def deploy(
    project: Project,
    *,
    auto_approve: bool,
    stack: str | None = None,
    parallel: int = DEFAULT_PARALLEL,
    full: bool = False,
    force: bool = False,
    confirm: Confirm | None = None,
    progress: Progress = lambda _: None,
) -> Report:
    """Synthesize, check (AMIs, types offered, vCPU quotas, orphans, lost hosts), plan
    every changed stack, confirm, apply concurrently. ``full``: run Terraform on
    unchanged stacks too. ``force``: go on when the preflight finds a region short."""
    project.synth()
    loaded = load(project)
    units = _units(loaded, stack)
    preflight.check_amis([g for u in units for g in u.groups], parallel=parallel)
    for finding in preflight.check_capacity(units, parallel=parallel, force=force):
        progress(finding.line())
    mode = Mode(auto_approve=auto_approve, full=full)
    report = _run(loaded, units, mode, confirm=confirm, parallel=parallel, progress=progress)
    again = [r.unit.name for r in report.runs if r.retry and r.ok]
    if report.cancelled or not again:
        return report
    # Spot fell short somewhere: declare the recorded on-demand fallback, apply once more
    # (already confirmed), and report what the regions hold then.
    progress(f"spot fell short: launching on-demand fallback in {', '.join(again)}")
    project.synth()
    loaded = load(project)
    retried = _run(
        loaded,
        [u for u in loaded.units if u.name in again],
        Mode(auto_approve=True, full=True),
        confirm=None,
        parallel=parallel,
        progress=progress,
    )
    by_name = {r.unit.name: r for r in retried.runs}
    runs = tuple(
        _merge(r, by_name[r.unit.name]) if r.unit.name in by_name else r for r in report.runs
    )
    return attrs.evolve(report, runs=runs)


def _merge(first: UnitRun, second: UnitRun) -> UnitRun:
    """One line per unit: the second run's outcome and capacity, both runs' changes."""
    changes = (first.plan.changes if first.plan else ()) + (
        second.plan.changes if second.plan else ()
    )
    plan = Plan(changes=changes, plan_file=None) if changes else second.plan
    outcome = second.outcome
    if first.outcome is not None and outcome is not None:
        outcome = Outcome(
            added=first.outcome.added + outcome.added,
            changed=first.outcome.changed + outcome.changed,
            removed=first.outcome.removed + outcome.removed,
            errors=first.outcome.errors + outcome.errors,
        )
    return attrs.evolve(
        second,
        plan=plan,
        outcome=outcome,
        orphans=first.orphans,
        swept=first.swept + second.swept,
        seconds=first.seconds + second.seconds,
    )


def destroy(
    project: Project,
    *,
    auto_approve: bool,
    stack: str | None = None,
    parallel: int = DEFAULT_PARALLEL,
    sweep: bool = False,
    confirm: Confirm | None = None,
    progress: Progress = lambda _: None,
) -> Report:
    """Destroy every stack's resources, then prove it: look up everything still tagged
    with the deployer's uuid and each stack, in every region the project ever used.
    With ``sweep``, remove what is found (only resources carrying both tags)."""
    project.synth()
    loaded = load(project)
    units = _units(loaded, stack)
    mode = Mode(destroy=True, auto_approve=auto_approve)
    report = _run(loaded, units, mode, confirm=confirm, parallel=parallel, progress=progress)
    if report.cancelled:
        return report
    progress("checking that nothing is left")
    left = find_left(units, parallel)
    swept: list[str] = []
    if sweep and left:
        by_region: dict[str, list[Resource]] = {}
        for item in left:
            by_region.setdefault(item.region, []).append(item)
        for lines in concurrently(list(by_region.values()), ec2_fleet.remove, parallel):
            swept.extend(lines)
        left = find_left(units, parallel)
    return attrs.evolve(report, leftovers=tuple(left), swept=tuple(swept))


def find_left(units: Sequence[Unit], parallel: int) -> list[Resource]:
    """Everything tagged with each stack's uuid in each of its regions."""
    places = sorted(
        {
            (u.uuid, u.app_stack, u.region)
            for u in units
            if u.kind in (stacks.REGION, stacks.TOMBSTONE) and u.uuid and u.app_stack and u.region
        }
    )
    found = concurrently(places, lambda p: ec2_fleet.find(p[2], p[0], p[1]), parallel)
    return leftovers.still_billing(r for group in found for r in group)
