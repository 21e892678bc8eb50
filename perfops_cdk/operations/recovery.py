"""One more apply for a region stack whose create was sent twice.

When the answer to a create is lost after AWS acted (a connection dropped on the way
back), the provider's HTTP client sends the create again and it fails as a duplicate
(``InvalidGroup.Duplicate`` for a security group, ``AlreadyExists`` for a launch
template): the first attempt made the resource, which no state records. perfops
removes what the tags find outside the state (the crash-recovery rule,
planners/leftovers.py: only resources carrying the deployer's uuid and the stack) and
applies once more. Against the emulator under load this happens now and then; against
AWS, on a network blip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from perfops_cdk.effects import ec2_fleet
from perfops_cdk.effects.terraform_events import Outcome
from perfops_cdk.planners import leftovers, stacks
from perfops_cdk.planners.stacks import Unit

DUPLICATE = ("InvalidGroup.Duplicate", "AlreadyExists")


def wanted(unit: Unit, outcome: Outcome) -> bool:
    """A region stack's apply that failed only on creates sent twice."""
    return (
        unit.kind == stacks.REGION
        and bool(unit.region and unit.uuid and unit.app_stack)
        and bool(outcome.errors)
        and all(any(mark in error for mark in DUPLICATE) for error in outcome.errors)
    )


def sweep(unit: Unit, state: dict[str, Any]) -> list[str]:
    """Remove what the first attempts made and no state records; what was removed."""
    assert unit.region and unit.uuid and unit.app_stack
    found = ec2_fleet.find(unit.region, unit.uuid, unit.app_stack)
    orphans = leftovers.orphans(found, leftovers.known_ids(state))
    return ec2_fleet.remove(orphans) if orphans else []


def combined(first: Outcome, again: Sequence[Outcome]) -> Outcome:
    """The outcome of an apply and its retries: changes summed, the last errors."""
    runs = [first, *again]
    return Outcome(
        added=sum(o.added for o in runs),
        changed=sum(o.changed for o in runs),
        removed=sum(o.removed for o in runs),
        errors=runs[-1].errors,
    )
