"""Terraform's ``-json`` events read into what perfops reports: a plan's changes, an
apply's outcome, its errors one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from perfops_cdk.effects.denied import denial


@attrs.frozen
class Change:
    """One resource a plan would change: its address and Terraform's action."""

    address: str
    action: str  # create | update | delete | replace | read


@attrs.frozen
class Plan:
    """A saved plan (``plan_file``) and what it would do; no file when nothing changes."""

    changes: tuple[Change, ...]
    plan_file: Path | None


@attrs.frozen
class Outcome:
    """What an apply did; ``errors`` are Terraform's error summaries, one line each."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    errors: tuple[str, ...] = ()


def event_errors(events: list[dict[str, Any]], exit_code: int) -> list[str]:
    """Terraform's error diagnostics, one line each."""
    errors = []
    for event in events:
        diagnostic = event.get("diagnostic") or {}
        if diagnostic.get("severity") == "error":
            where = diagnostic.get("address")
            text = diagnostic.get("summary", "error")
            detail = " ".join((diagnostic.get("detail") or "").split())
            denied = denial(f"{text} {detail}")
            if denied is not None:  # the action to grant, not the SDK's wrapping
                text, detail = denied.line(), ""
            line = f"{where}: {text}" if where else text
            errors.append(f"{line}: {detail}" if detail else line)
    if not errors and exit_code not in (0, 2):
        errors.append(f"terraform exited {exit_code}")
    return errors


def changes_in(events: list[dict[str, Any]]) -> tuple[Change, ...]:
    return tuple(
        Change(e["change"]["resource"]["addr"], e["change"]["action"])
        for e in events
        if e.get("type") == "planned_change"
    )


def outcome_of(events: list[dict[str, Any]], exit_code: int) -> Outcome:
    summary: dict[str, Any] = {}
    for event in events:
        if event.get("type") == "change_summary":
            summary = event.get("changes", {})
    return Outcome(
        added=int(summary.get("add", 0)),
        changed=int(summary.get("change", 0)),
        removed=int(summary.get("remove", 0)),
        errors=tuple(event_errors(events, 0 if exit_code == 0 else 1)),
    )


def last_error_line(stderr: str | None) -> str:
    """The line of a failed command's ``-no-color`` output that says why."""
    lines = [ln.strip(" │╷╵") for ln in (stderr or "").splitlines()]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    last = (errors or [ln for ln in lines if ln] or ["no output"])[-1]
    # Terraform wraps a long diagnostic over lines; a denial is named from all of it.
    denied = denial(" ".join(lines[lines.index(last) :])) if errors else None
    return f"Error: {denied.line()}" if denied else last
