"""The status table at fleet scale: a deployment alike and as declared in many regions
is one row on a terminal; every region that differs keeps a row of its own; piped
output keeps one line per deployment and region with every id."""

from __future__ import annotations

import io

import attrs
import pytest
from rich.console import Console

from perfops_cdk.cli import main as cli
from perfops_cdk.operations.status import Status
from perfops_cdk.planners.status import StatusRow, folded
from perfops_cdk.props.regions import DEFAULT_REGIONS

REGIONS = tuple(DEFAULT_REGIONS[:17])


def _row(region: str, planned: int = 6, live: int = 6, deployment: str = "load") -> StatusRow:
    ids = tuple(f"i-{region}-{n}" for n in range(live))
    return StatusRow("perf-ops", deployment, region, planned, live, f"ami-{region}", ids)


def _fleet() -> tuple[StatusRow, ...]:
    """Two deployments in 17 regions; `load` is one host short in the last region."""
    rows = [_row(r) for r in REGIONS] + [_row(r, deployment="web") for r in REGIONS]
    rows[16] = _row(REGIONS[16], planned=6, live=5)
    return tuple(rows)


def _terminal(rows: tuple[StatusRow, ...], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=200, force_terminal=True))
    monkeypatch.setattr(cli, "errors", Console(file=io.StringIO(), width=200))
    cli.show_status(Status(rows=rows, regions=REGIONS, synthesized=False))
    return out.getvalue().splitlines()


def test_alike_regions_fold_and_the_short_region_keeps_its_row() -> None:
    shown = folded(_fleet())
    assert [(r.deployment, r.region, len(r.regions)) for r in shown] == [
        ("load", REGIONS[0], 16),
        ("load", REGIONS[16], 0),
        ("web", REGIONS[0], 17),
    ]
    load, short, web = shown
    assert (load.planned, load.live, load.running) == (96, 96, 96)
    assert (short.planned, short.live) == (6, 5) and not short.matches
    assert (web.planned, web.live) == (102, 102) and web.matches
    assert len(web.instance_ids) == 102


def test_few_regions_or_differing_rows_stay_one_row_each() -> None:
    few = tuple(_row(r) for r in REGIONS[:4])
    assert folded(few) == list(few)
    spot = tuple(
        attrs.evolve(_row(r), market="spot") if i % 2 else _row(r) for i, r in enumerate(REGIONS)
    )
    markets = {(r.market, len(r.regions)) for r in folded(spot)}
    assert markets == {("on-demand", 9), ("spot", 8)}


def test_terminal_table_at_400_hosts_is_a_row_per_deployment_and_short_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = _terminal(_fleet(), monkeypatch)
    body = [line for line in lines if "load" in line or "web" in line]
    assert len(body) == 3, lines
    assert any("every region (17)" in line and "102" in line for line in body)
    assert any("16 regions" in line and "96" in line for line in body)
    assert any(REGIONS[16] in line and "5" in line for line in body)
    # Ids of folded rows are not listed one per line: a count says where they are.
    assert not any("i-eu-west-1-0" in line for line in lines)
    assert any("102 hosts" in line for line in body)
    # One AMI per region: the folded row says so rather than naming one.
    assert any("one per region" in line for line in body)


def test_piped_status_keeps_every_row_and_id(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli.show_status(Status(rows=_fleet(), regions=REGIONS, synthesized=False))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 34
    ids = [word for line in lines for word in line.replace("\t", " ").split() if word[:2] == "i-"]
    assert len(ids) == 17 * 6 * 2 - 1
