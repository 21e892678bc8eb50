"""``perfops``: synth, deploy, destroy, status, and the local AWS emulator."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from perfops_cdk import operations
from perfops_cdk.cli import cost, fleet
from perfops_cdk.cli import report as printed
from perfops_cdk.cli.console import console, errors
from perfops_cdk.cli.images import images_app
from perfops_cdk.doctor import check_aws, check_environment
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.operations import cost as costs
from perfops_cdk.operations.preflight import PreflightFailed
from perfops_cdk.planners.cost import Estimate, Prices
from perfops_cdk.planners.lifetime import left_text
from perfops_cdk.planners.stacks import Unit
from perfops_cdk.planners.status import StatusRow, folded
from perfops_cdk.project import Project
from perfops_cdk.props.regions import regions_text

app = typer.Typer(no_args_is_help=True, help="Load-test fleets on AWS, declared in Python.")
app.add_typer(images_app, name="images")

AutoApprove = Annotated[
    bool, typer.Option("--auto-approve", "-y", help="Apply without asking for confirmation.")
]
StackOption = Annotated[str | None, typer.Option(help="Only this stack. Default: every stack.")]
PricesOption = Annotated[
    Path | None,
    typer.Option(
        "--prices",
        help="Price table (JSON, docs/operations.md#prices). Default: the AWS Price List "
        "API and spot price history; none against the emulator.",
    ),
]


def _fail(error: PerfOpsError) -> typer.Exit:
    if str(error):
        errors.print(f"error: {error}", markup=False, highlight=False)
    return typer.Exit(error.exit_code)


@app.command()
def synth() -> None:
    """Run the app in cdktf.json and write Terraform JSON to cdktf.out/."""
    try:
        project = Project.find()
        project.synth()
    except PerfOpsError as error:
        raise _fail(error) from None
    console.print(f"synthesized {', '.join(project.stacks())} into {project.outdir}", markup=False)


Parallel = Annotated[
    int,
    typer.Option(
        "--parallel",
        min=1,
        max=32,
        help="Terraform runs at once (each starts a ~600 MB provider); the region stacks "
        "perfops empties itself through the API do not count.",
    ),
]
Verbose = Annotated[bool, typer.Option("--verbose", help="Print each stack's full plan too.")]


@app.command()
def deploy(
    auto_approve: AutoApprove = False,
    stack: StackOption = None,
    parallel: Parallel = operations.DEFAULT_PARALLEL,
    full: Annotated[
        bool,
        typer.Option(
            help="Run Terraform on every stack, also those unchanged since their last "
            "apply whose hosts AWS shows as declared."
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(help="Deploy even where the preflight finds a region short of quota."),
    ] = False,
    verbose: Verbose = False,
    prices: PricesOption = None,
) -> None:
    """Synthesize, check AMIs, capacity and quotas, show the fleet and its cost per hour,
    plan every changed stack, confirm once, apply concurrently."""
    try:
        table = costs.read_prices(prices)
        report = operations.deploy(
            Project.find(),
            auto_approve=auto_approve,
            stack=stack,
            parallel=parallel,
            full=full,
            force=force,
            confirm=printed.confirm_with(verbose),
            progress=printed.say,
            announce=_announce(table),
        )
    except PreflightFailed as error:
        for line in error.lines():
            errors.print(line, markup=False, highlight=False)
        raise _fail(error) from None
    except PerfOpsError as error:
        raise _fail(error) from None
    printed.finish(report, "deploy")


def _announce(table: Prices | None) -> Callable[[Sequence[Unit]], None]:
    def announce(units: Sequence[Unit]) -> None:
        cost.show_fleet(console, costs.fleet_estimate(units, table))

    return announce


@app.command()
def destroy(
    auto_approve: AutoApprove = False,
    stack: StackOption = None,
    parallel: Parallel = operations.DEFAULT_PARALLEL,
    sweep: Annotated[
        bool,
        typer.Option(help="Also remove what is still tagged with this uuid and stack afterwards."),
    ] = False,
    full: Annotated[
        bool,
        typer.Option(
            help="Let Terraform destroy every stack, also the region stacks perfops "
            "empties itself through the API."
        ),
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Destroy every stack's hosts and groups, then prove nothing tagged is left."""
    try:
        report = operations.destroy(
            Project.find(),
            auto_approve=auto_approve,
            stack=stack,
            parallel=parallel,
            sweep=sweep,
            full=full,
            confirm=printed.confirm_with(verbose),
            progress=printed.say,
        )
    except PerfOpsError as error:
        raise _fail(error) from None
    printed.finish(report, "destroy")
    if report.leftovers:
        errors.print("still in AWS, tagged with this deployer and stack:")
        for item in report.leftovers:
            errors.print(f"  {item.line()}", markup=False, highlight=False)
        errors.print("remove them with: perfops destroy --sweep")
        raise typer.Exit(1)
    console.print("nothing left: no host, fleet, template, group or volume carries the tags")


@app.command()
def status(
    synth: Annotated[
        bool | None,
        typer.Option(
            "--synth/--no-synth",
            help="Synthesize first. Default: only when the app changed since the last synth.",
        ),
    ] = None,
    all_regions: Annotated[
        bool, typer.Option(help="Look in every default region, not only the app's.")
    ] = False,
    prices: PricesOption = None,
) -> None:
    """Per deployment and region: hosts declared and live, ids, AMI, time left, cost per
    hour; hosts of this deployer that nothing declares. Exits 1 when reality differs
    from the declaration."""
    try:
        table = costs.read_prices(prices)
        result = operations.status(Project.find(), synth=synth, all_regions=all_regions)
        running = costs.running_estimate(result, table)
    except PerfOpsError as error:
        raise _fail(error) from None
    show_status(result, running)
    if result.drift:
        raise typer.Exit(1)


STATUS_COLUMNS = (
    "stack",
    "deployment",
    "region",
    "planned",
    "live",
    "market",
    "containers",
    "AMI",
    "instances",
    "left",
    "USD/h",
)


def _status_cells(row: StatusRow, running: Estimate | None, among: Sequence[str]) -> list[str]:
    where = row.regions or (row.region,)
    price = cost.rows_price(running, row.app_stack, row.deployment, where) if running else "-"
    return [
        row.app_stack,
        row.deployment if row.declared else f"{row.deployment} (not declared)",
        _where(row, among),
        str(row.planned),
        f"{row.live}" if row.running == row.live else f"{row.live} ({row.running} running)",
        row.market if not row.spot else f"{row.market} ({row.spot} spot)",
        f"{row.containers_planned} ({row.containers_per_host}/host)"
        if row.containers_per_host
        else "-",
        row.ami,
        " ".join(row.instance_ids) or "-",
        left_text(row.left),
        price,
    ]


def _where(row: StatusRow, among: Sequence[str]) -> str:
    """The region cell: the region, or the regions a folded row stands for."""
    if not row.regions:
        return row.region
    if set(row.regions) >= set(among):
        return regions_text(row.regions, among)  # every region (N)
    return f"{len(row.regions)} regions"


def show_status(result: operations.Status, running: Estimate | None = None) -> None:
    """A table and the running cost on a terminal; piped, tab-separated lines with whole
    ids and nothing else (each row's cost is a column). On a terminal a deployment
    alike and as declared in many regions is one row (planners/status.folded): its ids
    are counted, not listed (``perfops hosts`` lists them); every region that differs
    keeps a row of its own."""
    if not console.is_terminal:
        # Plain lines: rich would expand the tabs.
        rows = (_status_cells(row, running, result.regions) for row in result.rows)
        for cells in (STATUS_COLUMNS, *rows):
            sys.stdout.write("\t".join(cells) + "\n")
        return
    table = Table(title=f"hosts in {regions_text(result.regions, result.regions) or 'no region'}")
    for column in STATUS_COLUMNS:
        table.add_column(column, overflow="fold", no_wrap=column in ("AMI", "region"))
    for row in folded(result.rows):
        cells = _status_cells(row, running, result.regions)
        ids = f"{row.live} hosts (perfops hosts)" if row.regions else "\n".join(row.instance_ids)
        cells[STATUS_COLUMNS.index("instances")] = ids or "-"
        table.add_row(*cells, style="" if row.matches else "yellow")
    console.print(table)
    if running is not None:
        console.print(cost.total_line(running, "running"), markup=False, highlight=False)
        for text in cost.detail_lines(running):
            console.print(text, markup=False, highlight=False)
    if result.drift:
        errors.print("reality differs from the declaration: run perfops deploy to converge")


@app.command()
def demo() -> None:
    """Run the whole flow against a local AWS emulator: images, deploy, status, destroy."""
    from perfops_cdk.demo import run_demo  # imports the constructs, hence cdktf

    try:
        run_demo(
            Project.find(),
            say=lambda text: console.print(Text.assemble(("demo", "bold"), f": {text}")),
            show=show_status,
        )
    except PerfOpsError as error:
        raise _fail(error) from None


@app.command()
def doctor(
    aws: Annotated[
        bool,
        typer.Option(
            "--aws",
            help="Check the AWS account instead: identity, the app's regions, the state "
            "bucket, missing permissions (read-only; creates are dry runs).",
        ),
    ] = False,
) -> None:
    """Check the tools perfops drives and point terraform at a local provider mirror."""
    if aws:
        _doctor_aws()
        return
    report = check_environment(Project.find().root)
    for check in report.checks:
        mark = "[green]ok[/]" if check.ok else "[red]missing[/]"
        console.print(f"{mark:>18} ", Text(f"{check.name}: {check.detail}"), sep="")
    if report.exports:
        console.print("".join(f"export {k}={v}\n" for k, v in report.exports.items()).rstrip())
    if not report.ok:
        raise typer.Exit(2)


def _doctor_aws() -> None:
    """One line per finding; exit 1 when any check failed."""
    try:
        report = check_aws(Project.find())
    except PerfOpsError as error:
        raise _fail(error) from None
    for finding in report.findings:
        console.print(finding.line(), markup=False, highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command("local-aws")
def local_aws(
    env_file: Annotated[
        Path | None, typer.Option(help="Also write the environment to this file.")
    ] = None,
) -> None:
    """Run the AWS emulator (moto) on a free loopback port until interrupted."""
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    # Blocked before the emulator's threads start (they inherit the mask), so Ctrl-C can
    # only arrive in sigwait below, however early it comes: never a KeyboardInterrupt.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    emulator = Emulator().start()
    exports = "".join(f"export {k}={v}\n" for k, v in emulator.environment().items())
    if env_file is not None:
        env_file.write_text(exports)
    sys.stdout.write(exports)
    sys.stdout.flush()
    errors.print(f"AWS emulator at {emulator.url}; Ctrl-C stops it.")
    try:
        signal.sigwait(stop_signals)
    finally:
        emulator.stop()


fleet.register(app)

if __name__ == "__main__":
    app()
