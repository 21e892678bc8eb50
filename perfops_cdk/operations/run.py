"""``perfops deploy`` and ``perfops destroy``: every stack planned, confirmed once, applied.

Each unit (a region stack, a PerfOpsStack, another cdktf stack, a tombstone) is one
Terraform working directory with its own state. Every unit is surveyed first (state,
orphans, lost hosts, unchanged or not; read-only), the preflight checks the units that
will change, then they are planned and applied at most ``parallel`` at once (a
Terraform process and its provider hold ~700 MB, so this is also the memory bound), in
waves that respect cdktf's stack dependencies. A unit that fails is reported with its
error and log; the others go on.

Crash safety: before applying, the resources tagged with the deployer's uuid and the
stack that no Terraform state records (what a killed run created) are listed with the
plan and removed before Terraform runs (planners/leftovers.py has the rule).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from perfops_cdk.effects import ec2_fleet, ec2_instances, ledger
from perfops_cdk.effects.terraform_events import Outcome, Plan
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.operations import preflight, recovery, teardown
from perfops_cdk.operations.loading import (
    DEFAULT_PARALLEL,
    READ_PARALLEL,
    Loaded,
    can_run,
    concurrently,
    load,
    record_blocks,
    turn,
)
from perfops_cdk.operations.units import Confirm, Mode, Progress, Report, UnitRun
from perfops_cdk.planners import leftovers, stacks
from perfops_cdk.planners.capacity import Fulfilment, fulfilment, refills
from perfops_cdk.planners.leftovers import Resource
from perfops_cdk.planners.preflight import finding_lines
from perfops_cdk.planners.stacks import Unit
from perfops_cdk.project import Project

# Checks a run makes on the units it is about to plan or apply (deploy: the preflight).
Check = Callable[[Sequence[Unit]], None]


def _units(loaded: Loaded, stack: str | None) -> list[Unit]:
    """The selected units, without PerfOpsStacks that hold only their backend."""
    return [u for u in stacks.select(loaded.units, stack) if u.kind != stacks.APP or u.has_content]


def _survey(loaded: Loaded, unit: Unit, mode: Mode, gate: threading.Semaphore) -> UnitRun:
    """Init, read state, find orphans and lost hosts: nothing changes, and every unit
    of the run is surveyed before any is planned or checked. Terraform runs (init, a
    remote state pull) pass ``gate``; the AWS reads run wider (READ_PARALLEL).

    A region stack whose synthesized JSON is the one last applied cleanly, with no
    orphan, and whose hosts and groups AWS shows as declared, is skipped: Terraform
    would find nothing to do, each Terraform run costs seconds of CPU (docs/design.md),
    and the preflight has nothing to check for it.
    """
    started = time.monotonic()
    try:
        if not can_run(loaded, unit):
            return _unrunnable(loaded, unit)
        workspace = loaded.workspace(unit)
        record_blocks(loaded, unit)
        with gate:
            workspace.init()
        orphans: list[Resource] = []
        replace: list[str] = []
        if unit.region and unit.uuid and unit.app_stack and not mode.destroy:
            with gate:
                state = workspace.state()
            found = ec2_fleet.find(unit.region, unit.uuid, unit.app_stack)
            orphans = leftovers.orphans(found, leftovers.known_ids(state))
            live = {
                r.id for r in found if r.kind == "instance" and r.state in ("pending", "running")
            }
            # Spot with fallback: what spot could not give is topped up on demand after
            # the apply; any other short fleet is replaced, to try again (refills).
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
            short = leftovers.short_fleets(state, live, wanted)
            replace = refills(state, live, short, topped_up)
            unchanged = not mode.full and loaded.applied(unit) == loaded.digest(unit)
            if unchanged and not orphans and not replace and leftovers.matches(unit.groups, found):
                return UnitRun(unit=unit, skipped=True, seconds=time.monotonic() - started)
        return UnitRun(
            unit=unit,
            orphans=tuple(orphans),
            replace=tuple(replace),
            seconds=time.monotonic() - started,
        )
    except PerfOpsError as error:
        return UnitRun(unit=unit, error=str(error), seconds=time.monotonic() - started)


def _plan(loaded: Loaded, surveyed: UnitRun, mode: Mode, gate: threading.Semaphore) -> UnitRun:
    """The saved plan shown before the confirmation (none with ``-y``: Terraform plans
    and applies in one run then)."""
    if surveyed.error is not None or surveyed.skipped or mode.auto_approve:
        return surveyed
    found = teardown.teardown(loaded, surveyed.unit, mode)
    if found is not None:
        return attrs.evolve(surveyed, plan=teardown.plan(found))
    started, waited = time.monotonic(), [0.0]
    try:
        with turn(gate, waited):
            planned = loaded.workspace(surveyed.unit).plan(
                destroy=mode.destroy, replace=surveyed.replace
            )
    except PerfOpsError as error:
        return attrs.evolve(surveyed, error=str(error))
    seconds = surveyed.seconds + time.monotonic() - started - sum(waited)
    return attrs.evolve(surveyed, plan=planned, seconds=seconds)


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


def _apply(loaded: Loaded, prepared: UnitRun, mode: Mode, gate: threading.Semaphore) -> UnitRun:
    """Apply (or destroy) one unit. Terraform runs pass ``gate`` (memory: about 700 MB
    each); a region stack perfops empties itself does not (it waits on EC2, not CPU:
    against a real account, for its hosts to terminate before their groups can go)."""
    if prepared.error is not None or prepared.skipped:
        return prepared
    if not mode.auto_approve and not prepared.changed:
        return prepared
    started, waited = time.monotonic(), [0.0]
    unit = prepared.unit
    try:
        swept: list[str] = []
        if prepared.orphans:
            swept = ec2_fleet.remove(prepared.orphans)
        workspace = loaded.workspace(unit)
        found = teardown.teardown(loaded, unit, mode)
        if found is not None:
            planned = teardown.plan(found)
            outcome = teardown.remove(loaded, unit, found)
        elif mode.auto_approve:
            with turn(gate, waited):
                planned, outcome = workspace.apply_now(
                    destroy=mode.destroy, replace=prepared.replace
                )
        else:
            assert prepared.plan is not None
            with turn(gate, waited):
                planned, outcome = prepared.plan, workspace.apply_plan(prepared.plan)
        if found is None and recovery.wanted(unit, outcome, mode.destroy):
            swept += recovery.sweep(unit, workspace.state())
            with turn(gate, waited):
                _, again = workspace.apply_now(destroy=mode.destroy, replace=prepared.replace)
            outcome = recovery.combined(outcome, [again])
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
            seconds=prepared.seconds + time.monotonic() - started - sum(waited),
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
    recorded = {f.deployment: f.fallback for f in found if f.fallback}
    if wanted == recorded and not any(f.fallback_lost for f in found):
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
    check: Check | None = None,
) -> Report:
    gate = threading.Semaphore(parallel)
    surveyed = concurrently(
        list(units), lambda u: _survey(loaded, u, mode, gate), max(parallel, READ_PARALLEL)
    )
    if check is not None:  # before anything is planned or created
        check([s.unit for s in surveyed if s.error is None and not s.skipped])
    by_name = {s.unit.name: s for s in surveyed}
    runs: list[UnitRun] = []
    waves = stacks.waves(units, reverse=mode.destroy)
    # Plans of later waves may read outputs of earlier ones, so with dependencies
    # each wave is planned and applied before the next; one confirmation covers all
    # of a dependency-free app (the usual case: region stacks only).
    for index, wave in enumerate(waves):
        progress(f"checking {len(wave)} stack(s): {stacks.names_text(wave)}")
        prepared = concurrently(
            [by_name[u.name] for u in wave],
            lambda s: _plan(loaded, s, mode, gate),
            max(parallel, READ_PARALLEL),
            weight=lambda s: s.unit.weight,
        )
        report = Report(runs=tuple(prepared))
        asks = index == 0 and not mode.auto_approve and report.changes
        if asks and (confirm is None or not confirm(report)):
            return Report(runs=tuple(runs + prepared), cancelled=True)
        busy = [p.unit for p in prepared if p.error is None and not p.skipped]
        if busy and (mode.auto_approve or report.changes):
            progress(f"applying {stacks.names_text(busy)}")
        runs.extend(
            concurrently(
                prepared,
                lambda p: _apply(loaded, p, mode, gate),
                max(parallel, READ_PARALLEL),
                weight=lambda p: 0 if p.skipped or p.error else p.unit.weight,
            )
        )
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
    announce: Callable[[Sequence[Unit]], None] | None = None,
) -> Report:
    """Synthesize, survey (orphans, lost hosts, unchanged stacks), check the stacks that
    change (AMIs, types offered, vCPU quotas), plan them, confirm, apply concurrently.
    ``full``: run Terraform on unchanged stacks too. ``force``: go on when the
    preflight finds a region short. ``announce`` is called once with the selected units
    before any is planned, with or without ``auto_approve`` (the CLI shows the fleet and
    its cost there)."""
    project.synth()
    loaded = load(project)
    units = _units(loaded, stack)
    if announce is not None:
        announce(units)

    def check(busy: Sequence[Unit]) -> None:
        preflight.check_amis([g for u in busy for g in u.groups], parallel=READ_PARALLEL)
        found = preflight.check_capacity(busy, parallel=READ_PARALLEL, force=force)
        for line in finding_lines(found, preflight.regions_checked(busy)):
            progress(line)

    mode = Mode(auto_approve=auto_approve, full=full)
    report = _run(
        loaded, units, mode, confirm=confirm, parallel=parallel, progress=progress, check=check
    )
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
    full: bool = False,
    confirm: Confirm | None = None,
    progress: Progress = lambda _: None,
) -> Report:
    """Destroy every stack's resources, then prove it: look up everything still tagged
    with the deployer's uuid and each stack, in every region the project ever used.
    With ``sweep``, remove what is found (only resources carrying both tags).

    Region stacks whose state perfops fully knows are emptied by perfops itself, the
    others by Terraform (operations/teardown.py); ``full``: Terraform destroys all."""
    project.synth()
    loaded = load(project)
    units = _units(loaded, stack)
    mode = Mode(destroy=True, auto_approve=auto_approve, full=full)
    report = _run(loaded, units, mode, confirm=confirm, parallel=parallel, progress=progress)
    if report.cancelled:
        return report
    progress("checking that nothing is left")
    left = teardown.left(units)
    swept: list[str] = []
    if sweep and left:
        by_region: dict[str, list[Resource]] = {}
        for item in left:
            by_region.setdefault(item.region, []).append(item)
        for lines in concurrently(list(by_region.values()), ec2_fleet.remove, parallel):
            swept.extend(lines)
        left = teardown.left(units)
    return attrs.evolve(report, leftovers=tuple(left), swept=tuple(swept))
