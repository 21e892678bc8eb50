"""Rendering of cost estimates: the fleet ``perfops deploy`` is about to run, and the
running cost ``perfops status`` shows. Render only; planners/cost.py decides."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from rich.console import Console
from rich.table import Table

from perfops_cdk.planners.cost import ZERO, CostLine, Estimate, folded, span_text
from perfops_cdk.props.regions import regions_text

HOURS_PER_DAY = 24
# The widest single type name (r5ad.12xlarge); a list of types wraps, one per line.
TYPES_WIDTH = 14


def line_price(line: CostLine) -> str:
    """``0.576``, ``0.50-0.60``; ``>=0.576`` when a price is missing, ``?`` when all are."""
    if line.complete:
        return span_text(line.per_hour)
    if line.per_hour.high == 0:
        return "?"
    return f">={span_text(line.per_hour)}"


def _market(line: CostLine) -> str:
    if line.spot and line.on_demand:
        return f"spot ({line.on_demand} on-demand)"
    return "spot" if line.spot else "on-demand"


def total_line(estimate: Estimate, what: str) -> str:
    """``fleet: 7 hosts, 44 vCPUs, 2.49 USD/h (59.79 USD/day)``, saying when it is only
    a lower bound."""
    vcpus = estimate.vcpus
    cores = f"{span_text(vcpus, money=False)} vCPUs" if vcpus is not None else "vCPUs unknown"
    hour = estimate.per_hour
    day = hour.times(HOURS_PER_DAY)
    money = f"{span_text(hour)} USD/h ({span_text(day)} USD/day)"
    if estimate.incomplete:
        lacking = "line lacks" if estimate.incomplete == 1 else "lines lack"
        lacking = f"{estimate.incomplete} {lacking} a price"
        known = hour.high > 0
        money = f"at least {money}; {lacking}" if known else f"cost unknown: {lacking}"
    return f"{what}: {estimate.hosts} hosts, {cores}, {money}"


def detail_lines(estimate: Estimate) -> list[str]:
    """Each missing price once with its regions, where the prices came from, and what
    went wrong."""
    regions = estimate.regions
    lines = [
        f"  {regions_text(where, regions)}: {what}" for what, where in estimate.missing().items()
    ]
    lines.append(f"prices: {estimate.prices.source}")
    lines += [f"prices: {note}" for note in estimate.prices.notes]
    return lines


def lifetime_line(estimate: Estimate) -> str | None:
    """One line naming the deployments whose hosts run until destroyed, if any."""
    names = estimate.without_lifetime
    if not names:
        return None
    return (
        f"no lifetime: the hosts of {', '.join(names)} run until destroyed "
        '(Deployment(lifetime="8h") or PerfOpsStack(lifetime=...) makes hosts terminate '
        "themselves)"
    )


def show_fleet(console: Console, estimate: Estimate) -> None:
    """The fleet a deploy converges to and its cost per hour, before anything is planned."""
    several = len({line.app_stack for line in estimate.lines}) > 1
    # One space between columns: eight whole columns fit a piped 80.
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0))
    regions = sorted({line.region for line in estimate.lines})
    rows = [
        {
            "deployment": f"{line.app_stack}:{line.deployment}" if several else line.deployment,
            "region": regions_text(line.regions, regions) if line.regions else line.region,
            "hosts": str(line.hosts),
            "vCPUs": span_text(line.vcpus, money=False) if line.vcpus is not None else "?",
            "types": ", ".join(line.instance_types),
            "market": _market(line),
            "lifetime": line.lifetime or "-",
            "USD/h": line_price(line),
        }
        for line in folded(estimate.lines)
    ]
    names = [
        name
        for name in (
            "deployment",
            "region",
            "hosts",
            "vCPUs",
            "types",
            "market",
            "lifetime",
            "USD/h",
        )
        # No lifetime anywhere is said in a line below the table, not in a column of "-".
        if name != "lifetime" or any(row[name] != "-" for row in rows)
    ]
    for name in names:
        # Names and figures stay whole (regions differ at their end: ap-northeast-1,
        # -2, -3); types and market wrap when a piped 80 columns are short.
        whole = max([len(name)] + [len(row[name]) for row in rows])
        table.add_column(
            name,
            justify="right" if name in ("hosts", "vCPUs", "USD/h") else "left",
            min_width=None if name in ("types", "market") else whole,
            max_width=TYPES_WIDTH if name == "types" else None,
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(row[name] for name in names))
    console.print(total_line(estimate, "fleet"), markup=False, highlight=False, soft_wrap=True)
    if estimate.lines:
        console.print(table)
    for text in detail_lines(estimate):
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    if (note := lifetime_line(estimate)) is not None:
        console.print(note, markup=False, highlight=False, soft_wrap=True)


def rows_price(estimate: Estimate, app_stack: str, deployment: str, regions: Sequence[str]) -> str:
    """The running cost of a status row (one region, or several folded), ``-`` when
    none of its hosts runs."""
    lines = [
        line
        for line in estimate.lines
        if (line.app_stack, line.deployment) == (app_stack, deployment) and line.region in regions
    ]
    if not lines:
        return "-"
    return line_price(
        attrs.evolve(
            lines[0],
            per_hour=sum((line.per_hour for line in lines), ZERO),
            missing=tuple(dict.fromkeys(m for line in lines for m in line.missing)),
        )
    )
