"""What ``perfops deploy`` and ``perfops destroy`` print: the plan summary to confirm, and
one line per stack that did something or failed."""

from __future__ import annotations

import click
import typer
from rich.text import Text

from perfops_cdk import operations
from perfops_cdk.cli.console import console, errors
from perfops_cdk.effects.terraform import show_plan
from perfops_cdk.planners import changes
from perfops_cdk.planners.capacity import fulfilment_lines


def say(text: str) -> None:
    errors.print(Text(text, style="dim"), highlight=False)  # text, not markup


def plan_lines(report: operations.Report) -> list[str]:
    """What the plans change (a deployment changed alike in many regions is one line:
    planners/changes.summary), then each unit that failed or has orphans to remove."""
    planned = [
        (run.unit, [(c.address, c.action) for c in run.plan.changes])
        for run in report.runs
        if run.error is None and run.plan is not None and run.plan.changes
    ]
    lines = changes.summary(planned)
    for run in report.runs:
        if run.error is not None:
            lines.append(f"{run.unit.name}: failed: {run.error}")
            continue
        if run.orphans:
            lines.append(
                f"{run.unit.name}: remove {len(run.orphans)} resource(s) an interrupted run "
                "left outside Terraform's state:"
            )
            lines += [f"    {r.line()}" for r in run.orphans]
    return lines


def confirm_with(verbose: bool) -> operations.Confirm:
    def confirm(report: operations.Report) -> bool:
        if verbose:
            for run in report.runs:
                if run.plan is not None and run.plan.plan_file is not None:
                    console.print(show_plan(run.plan), markup=False, highlight=False)
        for line in plan_lines(report):
            console.print(line, markup=False, highlight=False)
        try:
            return typer.confirm("Apply these changes?", default=False)
        except click.exceptions.Abort:  # no answer (stdin closed): nothing is applied
            errors.print("no answer: add -y to apply without asking")
            return False

    return confirm


def finish(report: operations.Report, verb: str) -> None:
    """One line per stack that did something (region stacks that did alike in many
    regions folded: planners/changes.outcomes) or failed; exit 1 unless all went well."""
    if report.cancelled:
        errors.print(f"{verb} cancelled: nothing was changed")
        raise typer.Exit(1)
    done: list[changes.Done] = []
    for run in report.runs:
        if run.swept:
            console.print(
                f"{run.unit.name}: removed {len(run.orphans)} resource(s) an interrupted run "
                "left outside Terraform's state:",
                markup=False,
            )
        for line in run.swept:
            console.print(f"    {line}", markup=False, highlight=False)
        if run.error is not None:
            errors.print(
                f"{run.unit.name}: failed: {run.error}",
                markup=False,
                highlight=False,
            )
        elif run.outcome is not None and run.outcome.errors:
            for error in run.outcome.errors:
                errors.print(f"{run.unit.name}: {error}", markup=False, highlight=False)
            errors.print(f"{run.unit.name}: see {run.log_hint}", markup=False)
        elif run.outcome is not None and run.changed:
            o = run.outcome
            done.append(changes.Done(run.unit, o.added, o.changed, o.removed, run.seconds))
    for line in changes.outcomes(done, [run.unit for run in report.runs]):
        console.print(line, markup=False, highlight=False)
    for line in report.swept:
        console.print(line, markup=False, highlight=False)
    for line in fulfilment_lines(got for run in report.runs for got in run.capacity):
        console.print(line, markup=False, highlight=False)
    if not report.changes and all(r.ok for r in report.runs):
        console.print(f"{verb}: no changes")
    if not all(r.ok for r in report.runs):
        raise typer.Exit(1)
