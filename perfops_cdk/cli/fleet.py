"""``perfops hosts | ssh | ssh-config | tunnel | clients``: reach every host of a project.

Registered on the main app by ``register(app)``. Output for people is a rich table at
a terminal; piped, it is tab-separated rows with a header line (or JSON with
``hosts --json``), so ids are never wrapped or cut.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import JustifyMethod
from rich.table import Table

from perfops_cdk import fleet
from perfops_cdk.cli.console import console, errors
from perfops_cdk.effects import ssh
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.planners.clients import ClientRow
from perfops_cdk.planners.hosts import FleetHost, host_record, hosts_document
from perfops_cdk.planners.lifetime import left_text, time_left
from perfops_cdk.project import Project

StackOption = Annotated[str | None, typer.Option(help="Only this stack. Default: every stack.")]
UserOption = Annotated[str, typer.Option(help="Login user (NixOS images: root).")]
IdentityOption = Annotated[
    Path | None,
    typer.Option(
        help="Key file for every host. Default: ~/.ssh/<KeyName>[.pem] of the host's "
        "EC2 key pair, else your ssh agent."
    ),
]
ParallelOption = Annotated[int, typer.Option(help="Hosts worked on at once.", min=1, max=1024)]
TargetArgument = Annotated[
    str,
    typer.Argument(
        help="DEPLOYMENT, DEPLOYMENT/REGION, DEPLOYMENT/REGION/INDEX or an instance id."
    ),
]
OptionalTarget = Annotated[
    str | None,
    typer.Argument(help="DEPLOYMENT (or DEPLOYMENT/REGION[/INDEX], or an instance id)."),
]


def _fail(error: PerfOpsError) -> typer.Exit:
    if str(error):
        errors.print(f"error: {error}", markup=False, highlight=False)
    return typer.Exit(error.exit_code)


def _piped() -> bool:
    return not console.is_terminal


def _cell(value: object) -> str:
    """An absent value is '-' (so `read` keeps columns); tabs and newlines are spaces."""
    if value is None or value == "":
        return "-"
    return " ".join(str(value).replace("\t", " ").splitlines())


def _tsv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    lines = ["\t".join(header), *("\t".join(_cell(v) for v in row) for row in rows)]
    sys.stdout.write("\n".join(lines) + "\n")


HOST_COLUMNS = (
    "stack",
    "deployment",
    "region",
    "index",
    "instance_id",
    "state",
    "public_ip",
    "private_ip",
    "availability_zone",
    "launch_time",
    "containers",
    "expires",
)


def hosts(
    target: OptionalTarget = None,
    region: Annotated[str | None, typer.Option(help="Only this region.")] = None,
    stack: StackOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON (schema: docs/operations.md).")
    ] = False,
) -> None:
    """Every host of the project, read from AWS by the deployer's tags."""
    try:
        found = fleet.list_hosts(Project.find(), target=target, stack=stack, region=region)
    except PerfOpsError as error:
        raise _fail(error) from None
    if as_json:
        document = hosts_document(found.hosts, found.scopes)
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    if _piped():
        records = [host_record(h) for h in found.hosts]
        _tsv(HOST_COLUMNS, [[r[c] for c in HOST_COLUMNS] for r in records])
        return
    _show_hosts(found.hosts)


def _show_hosts(found: Sequence[FleetHost]) -> None:
    if not found:
        console.print("no hosts")
        return
    now = datetime.now(UTC)
    groups: dict[tuple[str, str, str], list[FleetHost]] = {}
    for host in found:
        groups.setdefault((host.stack, host.deployment, host.region), []).append(host)
    for (stack, deployment, region), members in groups.items():
        # Fits 100 columns: the group is the title, the zone its letter, launch in UTC.
        table = Table(
            title=f"{deployment} in {region} (stack {stack})",
            title_justify="left",
            box=None,
            pad_edge=False,
        )
        columns: tuple[tuple[str, JustifyMethod], ...] = (
            ("index", "right"),
            ("instance id", "left"),
            ("state", "left"),
            ("public IP", "left"),
            ("private IP", "left"),
            ("zone", "left"),
            ("launched UTC", "left"),
            ("ctrs", "right"),
        )
        # Time left before a host's lifetime is over, when the group has one.
        expiring = any(h.instance.lifetime for h in members)
        for name, justify in columns + ((("left", "right"),) if expiring else ()):
            table.add_column(name, justify=justify, no_wrap=True)
        for host in members:
            instance = host.instance
            zone = instance.availability_zone
            left = [left_text(time_left(instance.expires, now))] if expiring else []
            table.add_row(
                "-" if host.index is None else str(host.index),
                instance.instance_id,
                instance.state,
                instance.public_ip or "-",
                instance.private_ip or "-",
                zone.removeprefix(region) or zone,
                instance.launch_time.strftime("%m-%d %H:%M"),
                str(instance.containers),
                *left,
            )
        console.print(table)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the interruption a fan-out already cleans up after."""


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """Ctrl-C or SIGTERM (``timeout``, a CI job cancelled) ends a fan-out the same way:
    every ssh it started is killed and waited for, one line, exit 130 or 143."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, _Terminated)
        errors.print(f"{'terminated' if terminated else 'interrupted'}; every ssh was stopped")
        raise typer.Exit(143 if terminated else 130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _writer() -> ssh.LineSink:
    """Prefix each line with its host; whole lines only, whichever thread writes."""
    lock = threading.Lock()

    def write(label: str, stream: str, line: bytes) -> None:
        out = sys.stdout if stream == "stdout" else sys.stderr
        with lock:
            out.flush()
            out.buffer.write(label.encode() + b": " + line)
            out.buffer.flush()

    return write


def ssh_command(
    target: TargetArgument,
    command: Annotated[
        list[str] | None, typer.Argument(help="Run this (after --) on every host.")
    ] = None,
    user: UserOption = fleet.DEFAULT_USER,
    identity: IdentityOption = None,
    parallel: ParallelOption = fleet.DEFAULT_PARALLEL,
    stack: StackOption = None,
) -> None:
    """Log in to one host, or run a command on many (perfops ssh web -- uptime)."""
    access = fleet.Access(user=user, identity=identity)
    try:
        project = Project.find()
        chosen = fleet.resolve(project, target, stack=stack)
        if not command:
            ssh.exec_interactive(fleet.login_destination(project, target, chosen, access))
        with _stopped_by_signals():
            outcomes = fleet.run_command(
                project, chosen, " ".join(command), access, parallel=parallel, on_line=_writer()
            )
    except PerfOpsError as error:
        raise _fail(error) from None
    failed = [o for o in outcomes if o.exit_code != 0]
    known_hosts = fleet.known_hosts_file(project)
    summary = f"ok {len(outcomes) - len(failed)} of {len(outcomes)} host(s)"
    errors.print(summary + (f"; failed {len(failed)}:" if failed else ""), highlight=False)
    for outcome in failed:
        hint = fleet.failure_hint(outcome, known_hosts)
        detail = f": {outcome.last_error}" if outcome.last_error else ""
        errors.print(
            f"  {outcome.label}: exit {outcome.exit_code}{detail}" + (f" ({hint})" if hint else ""),
            markup=False,
            highlight=False,
        )
    if failed:
        raise typer.Exit(1)


def ssh_config(
    target: OptionalTarget = None,
    user: UserOption = fleet.DEFAULT_USER,
    identity: IdentityOption = None,
    stack: StackOption = None,
) -> None:
    """An ssh config with a Host perfops-<deployment>-<region>-<index> per host."""
    access = fleet.Access(user=user, identity=identity)
    try:
        text = fleet.ssh_config(Project.find(), access, target=target, stack=stack)
    except PerfOpsError as error:
        raise _fail(error) from None
    sys.stdout.write(text)


def tunnel(
    target: TargetArgument,
    port: Annotated[int, typer.Option(help="Remote port (netdata: 19999).")] = 19999,
    local_port: Annotated[
        int | None,
        typer.Option(
            help="First local port (then +1 per host); 0: any free one. Default: the "
            "first free ports from --port upward."
        ),
    ] = None,
    user: UserOption = fleet.DEFAULT_USER,
    identity: IdentityOption = None,
    parallel: ParallelOption = fleet.DEFAULT_PARALLEL,
    stack: StackOption = None,
) -> None:
    """Forward a port of each host to 127.0.0.1 here until Ctrl-C."""
    access = fleet.Access(user=user, identity=identity)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    tunnels: list[ssh.Tunnel] = []
    try:
        project = Project.find()
        chosen = fleet.resolve(project, target, stack=stack)
        tunnels = fleet.start_tunnels(
            project,
            chosen,
            access,
            remote_port=port,
            local_port=local_port,
            parallel=parallel,
            on_line=_writer(),
        )
        _watch(tunnels, stop)
    except PerfOpsError as error:
        raise _fail(error) from None
    finally:
        ssh.stop_tunnels(tunnels)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _watch(tunnels: Sequence[ssh.Tunnel], stop: threading.Event) -> None:
    """Print each URL, then wait for Ctrl-C; report tunnels that close on their own."""
    up = [t for t in tunnels if not t.error]
    for t in tunnels:
        if t.error:
            errors.print(f"{t.label}: no tunnel: {t.error}", markup=False, highlight=False)
        else:
            sys.stdout.write(f"{t.label}\t{t.url}\n")
    if not up:
        raise typer.Exit(1)
    errors.print(f"{len(up)} tunnel(s) up; Ctrl-C closes them")
    sys.stdout.flush()
    while not stop.wait(0.5):
        for t in list(up):
            if t.process.poll() is not None:
                errors.print(
                    f"{t.label}: tunnel closed (ssh exit {t.process.returncode})", markup=False
                )
                up.remove(t)
        if not up:
            raise typer.Exit(1)


def clients(
    target: OptionalTarget = None,
    user: UserOption = fleet.DEFAULT_USER,
    identity: IdentityOption = None,
    parallel: ParallelOption = fleet.DEFAULT_PARALLEL,
    stack: StackOption = None,
) -> None:
    """Load-client containers per deployment and region: declared, created, running."""
    access = fleet.Access(user=user, identity=identity)
    try:
        with _stopped_by_signals():
            rows = fleet.clients(
                Project.find(), access, target=target, stack=stack, parallel=parallel
            )
    except PerfOpsError as error:
        raise _fail(error) from None
    _show_clients(rows)


CLIENT_COLUMNS = (
    "stack",
    "deployment",
    "region",
    "hosts",
    "declared",
    "created",
    "running",
    "behind",
    "unreachable",
    "first_error",
)


def _show_clients(rows: Sequence[ClientRow]) -> None:
    if _piped():
        _tsv(CLIENT_COLUMNS, [[getattr(r, c) for c in CLIENT_COLUMNS] for r in rows])
        return
    if not rows:
        console.print("no hosts")
        return
    several_stacks = len({r.stack for r in rows}) > 1
    table = Table(box=None, pad_edge=False)
    for name in ("deployment", "region", "hosts", "declared", "created", "running", "behind"):
        table.add_column(name, justify="left" if name in ("deployment", "region") else "right")
    for row in rows:
        behind = str(row.behind) + (f" ({row.unreachable} unreachable)" if row.unreachable else "")
        table.add_row(
            f"{row.stack}:{row.deployment}" if several_stacks else row.deployment,
            row.region,
            str(row.hosts),
            str(row.declared),
            str(row.created),
            str(row.running),
            behind,
        )
    console.print(table)
    # Error lines are long; below the table they stay whole instead of folding a column.
    failing = [r.first_error for r in rows if r.first_error]
    if failing:
        console.print("first error per deployment and region (host: error):")
    for line in failing:
        console.print(f"  {line}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the fleet commands to the main ``perfops`` app."""
    app.command("hosts")(hosts)
    app.command("ssh")(ssh_command)
    app.command("ssh-config")(ssh_config)
    app.command("tunnel")(tunnel)
    app.command("clients")(clients)
