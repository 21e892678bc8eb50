"""Destroying a region stack without Terraform.

Destroying a region stack through Terraform costs its provider four starts and
Terraform its own start (about 8 CPU-seconds, whatever the stack holds; 17 regions
were most of a 98 s destroy on 2 cores, docs/design.md). What perfops synthesizes
there is fleets, launch templates, security groups and bookkeeping, all tagged with
the deployer's uuid and the stack: perfops deletes what the state records through
the API in the order ``destroy --sweep`` uses (fleets with their instances first,
groups once the instances are gone), then leaves the state as a destroy would
(effects/tfstate.py).

The same goes for what a deploy empties: tombstones (region stacks the app no longer
has) and region stacks no deployment uses any more. A state in S3 (S3State) is
written back through ``terraform state push`` (no provider starts; the backend's
lock). Terraform still destroys a stack that holds anything else (a resource a user
added to the region stack), or that protects a resource with ``prevent_destroy``;
``--full`` sends every stack through it.
"""

from __future__ import annotations

from collections.abc import Sequence

from perfops_cdk.effects import ec2_fleet
from perfops_cdk.effects.terraform_events import Change, Outcome, Plan
from perfops_cdk.operations.loading import READ_PARALLEL, Loaded, concurrently
from perfops_cdk.operations.units import Mode
from perfops_cdk.planners import leftovers, stacks
from perfops_cdk.planners.leftovers import Resource, Teardown
from perfops_cdk.planners.stacks import Unit


def teardown(loaded: Loaded, unit: Unit, mode: Mode) -> Teardown | None:
    """What perfops removes itself for ``unit`` when the run empties it (a destroy; in
    a deploy, a tombstone or a region stack no deployment uses any more), or None
    when Terraform runs it (``--full``: always)."""
    emptied = unit.kind == stacks.TOMBSTONE or (unit.kind == stacks.REGION and not unit.groups)
    if mode.full or not (mode.destroy or emptied):
        return None
    if unit.kind not in (stacks.REGION, stacks.TOMBSTONE) or not unit.region:
        return None
    workspace = loaded.workspace(unit)
    config = loaded.project.stack_json(unit.name)
    if leftovers.guarded(config) or (not mode.destroy and config.get("resource")):
        return None  # Terraform refuses, or applying the stack would create something
    return leftovers.teardown(workspace.state(), unit.region)


def plan(found: Teardown) -> Plan:
    """The destroy plan, as Terraform would show it: every resource deleted."""
    return Plan(changes=tuple(Change(a, "delete") for a in found.addresses), plan_file=None)


def remove(loaded: Loaded, unit: Unit, found: Teardown) -> Outcome:
    """Delete what the state holds (each fleet with every instance it launched, as the
    provider does), then empty the state. Raises EffectError, the state untouched,
    when anything could not go. What carries the tags but no state records is left
    for the check that follows a destroy to list (``--sweep`` removes it).

    Only the state's fleets and instances EC2 still shows active or live are deleted
    and waited for, as the provider's refresh drops the others: a host whose lifetime
    ended hours ago is gone from EC2 and asking about its id fails, and a fleet an
    interrupted destroy already deleted cannot be deleted again.
    """
    assert unit.region
    kinds = ("fleet", "instance")
    held = [r for r in found.resources if r.kind in kinds]
    alive = ec2_fleet.live(
        unit.region,
        [r.id for r in held if r.kind == "fleet"],
        [r.id for r in held if r.kind == "instance"],
    )
    ec2_fleet.remove([r for r in found.resources if r.kind not in kinds or r.id in alive])
    loaded.workspace(unit).empty_state(found.read_as)
    return Outcome(removed=len(found.addresses))


def left(units: Sequence[Unit]) -> list[Resource]:
    """Everything tagged with each stack's uuid in each of its regions (read-only, all
    regions at once)."""
    places = sorted(
        {
            (u.uuid, u.app_stack, u.region)
            for u in units
            if u.kind in (stacks.REGION, stacks.TOMBSTONE) and u.uuid and u.app_stack and u.region
        }
    )
    found = concurrently(places, lambda p: ec2_fleet.find(p[2], p[0], p[1]), READ_PARALLEL)
    return leftovers.still_billing(r for group in found for r in group)
