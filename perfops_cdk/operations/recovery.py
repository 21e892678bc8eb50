"""One more apply for a region stack whose create or delete was sent twice.

When the answer to a create is lost after AWS acted (a connection dropped on the way
back), the provider's HTTP client sends the create again and it fails as a duplicate
(``InvalidGroup.Duplicate`` for a security group, ``AlreadyExists`` for a launch
template): the first attempt made the resource, which no state records. perfops
removes what the tags find outside the state (the crash-recovery rule,
planners/leftovers.py: only resources carrying the deployer's uuid and the stack) and
applies once more. Against the emulator under load this happens now and then; against
AWS, on a network blip.

A delete sent twice fails too when the provider does not take "not found" for done
(the emulator answers a fleet deleted again with ``InvalidParameterCombination``, a
template with a code the provider does not expect): the resource is gone but still in
the state. When every error of the apply is such a delete (a fleet, template or group
of ours, by id) and AWS no longer holds any of them, perfops applies once more; the
refresh drops them from the state. A delete that failed for a reason (a group still in
use) is not retried: the resource is still there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from perfops_cdk.effects import ec2_fleet
from perfops_cdk.effects.terraform_events import Outcome
from perfops_cdk.planners import leftovers, stacks
from perfops_cdk.planners.stacks import Unit

DUPLICATE = ("InvalidGroup.Duplicate", "AlreadyExists")
# The provider's delete errors name the resource: "deleting EC2 Fleet (fleet-...): ...".
_DELETING = re.compile(r"deleting [^()]*\((?P<id>(?:fleet|lt|sg)-[0-9a-f-]+)\)")


def wanted(unit: Unit, outcome: Outcome, destroy: bool = False) -> bool:
    """A region stack's apply that failed only on creates sent twice (a deploy), or
    only on deletes of what AWS no longer holds."""
    if unit.kind != stacks.REGION or not (unit.region and unit.uuid and unit.app_stack):
        return False
    if not outcome.errors:
        return False
    if not destroy and all(any(m in error for m in DUPLICATE) for error in outcome.errors):
        return True
    deleted = failed_deletes(outcome.errors)
    if not deleted:
        return False
    held = {r.id for r in ec2_fleet.find(unit.region, unit.uuid, unit.app_stack)}
    return not held & set(deleted)


def failed_deletes(errors: Sequence[str]) -> list[str]:
    """The ids of our resources whose delete failed, when every error is such a delete;
    else none."""
    found = [match["id"] for error in errors if (match := _DELETING.search(error))]
    return found if len(found) == len(errors) else []


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
