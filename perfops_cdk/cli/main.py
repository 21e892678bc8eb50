"""``perfops``: synth, deploy, destroy, status, and the local AWS emulator."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from perfops_cdk import operations
from perfops_cdk.cli import fleet
from perfops_cdk.cli.images import images_app
from perfops_cdk.demo import run_demo
from perfops_cdk.doctor import check_environment
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.planners.status import StatusRow
from perfops_cdk.project import Project

app = typer.Typer(no_args_is_help=True, help="Load-test fleets on AWS, declared in Python.")
console = Console()
errors = Console(stderr=True)
app.add_typer(images_app, name="images")

AutoApprove = Annotated[
    bool, typer.Option("--auto-approve", "-y", help="Apply without asking for confirmation.")
]
StackOption = Annotated[str | None, typer.Option(help="Only this stack. Default: every stack.")]


def _fail(error: PerfOpsError) -> typer.Exit:
    if str(error):
        errors.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(error.exit_code)


@app.command()
def synth() -> None:
    """Run the app in cdktf.json and write Terraform JSON to cdktf.out/."""
    try:
        project = Project.find()
        project.synth()
    except PerfOpsError as error:
        raise _fail(error) from None
    console.print(f"synthesized {', '.join(project.stacks())} into {project.outdir}")


@app.command()
def deploy(auto_approve: AutoApprove = False, stack: StackOption = None) -> None:
    """Synthesize, then create or update every host with Terraform."""
    try:
        operations.deploy(Project.find(), auto_approve=auto_approve, stack=stack)
    except PerfOpsError as error:
        raise _fail(error) from None


@app.command()
def destroy(auto_approve: AutoApprove = False, stack: StackOption = None) -> None:
    """Destroy every host and security group of the stacks."""
    try:
        operations.destroy(Project.find(), auto_approve=auto_approve, stack=stack)
    except PerfOpsError as error:
        raise _fail(error) from None


@app.command()
def status(
    synth: Annotated[bool, typer.Option(help="Synthesize first.")] = True,
) -> None:
    """Per region: hosts planned and running, their ids, AMI and security groups."""
    try:
        stacks = operations.status(Project.find(), synth=synth)
    except PerfOpsError as error:
        raise _fail(error) from None
    _show_status(stacks)


def _show_status(stacks: dict[str, list[StatusRow]]) -> None:
    if not console.is_terminal:
        # Piped or logged output has no width of its own; rich's 80 columns would
        # fold every id and name.
        console.width = max(console.width, 200)
    for stack, rows in stacks.items():
        table = Table(title=f"stack {stack}")
        for column in (
            "deployment",
            "region",
            "planned",
            "running",
            "containers",
            "AMI",
            "instances",
            "security groups",
        ):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                row.deployment,
                row.region,
                str(row.planned),
                str(row.running),
                f"{row.containers_planned} ({row.containers_per_host}/host)"
                if row.containers_per_host
                else "-",
                row.ami,
                "\n".join(row.instance_ids) or "-",
                "\n".join(row.security_groups) or "-",
            )
        console.print(table)


@app.command()
def demo() -> None:
    """Run the whole flow against a local AWS emulator: images, deploy, status, destroy."""
    try:
        run_demo(
            Project.find(),
            say=lambda text: console.print(f"[bold]demo[/]: {text}"),
            show=_show_status,
        )
    except PerfOpsError as error:
        raise _fail(error) from None


@app.command()
def doctor() -> None:
    """Check the tools perfops drives and point terraform at a local provider mirror."""
    report = check_environment(Project.find().root)
    for check in report.checks:
        mark = "[green]ok[/]" if check.ok else "[red]missing[/]"
        console.print(f"{mark:>18} {check.name}: {check.detail}")
    if report.exports:
        console.print("".join(f"export {k}={v}\n" for k, v in report.exports.items()).rstrip())
    if not report.ok:
        raise typer.Exit(2)


@app.command("local-aws")
def local_aws(
    env_file: Annotated[
        Path | None, typer.Option(help="Also write the environment to this file.")
    ] = None,
) -> None:
    """Run the AWS emulator (moto) on a free loopback port until interrupted."""
    emulator = Emulator().start()
    exports = "".join(f"export {k}={v}\n" for k, v in emulator.environment().items())
    if env_file is not None:
        env_file.write_text(exports)
    sys.stdout.write(exports)
    sys.stdout.flush()
    errors.print(f"AWS emulator at {emulator.url}; Ctrl-C stops it.")
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        emulator.stop()


fleet.register(app)

if __name__ == "__main__":
    app()
