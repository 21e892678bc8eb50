"""What a deploy or destroy did: per unit, and for the whole run."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from perfops_cdk.effects.terraform_events import Outcome, Plan
from perfops_cdk.planners.capacity import Fulfilment
from perfops_cdk.planners.leftovers import Resource
from perfops_cdk.planners.stacks import Unit

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
