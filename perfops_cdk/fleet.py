"""Reach every host of a project: list, ssh, ssh config, tunnels, load-client status.

Library functions that return data; ``perfops_cdk.cli.fleet`` renders it. Hosts come
from AWS by their tags (``perfops_cdk.fleet_scope`` says where to look), ssh runs only
through ``perfops_cdk.effects.ssh``.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs

from perfops_cdk.effects import ec2_hosts, ssh
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.fleet_scope import fleet_scope
from perfops_cdk.planners import hosts as plan
from perfops_cdk.planners.clients import STATUS_COMMAND, ClientRow, HostStatus, client_rows
from perfops_cdk.planners.hosts import FleetHost, StackScope, Target
from perfops_cdk.project import Project
from perfops_cdk.props.regions import check_region

DEFAULT_USER = "root"
DEFAULT_PARALLEL = 32
KNOWN_HOSTS = Path(".perfops") / "known_hosts"
# How far above the remote port to look for a free local one before asking the kernel.
PORT_SCAN = 100
PORT_ATTEMPTS = 3


@attrs.frozen
class Fleet:
    """The stacks looked at and the hosts found, in ``index_hosts`` order."""

    scopes: tuple[StackScope, ...]
    hosts: tuple[FleetHost, ...]


@attrs.frozen
class Access:
    """How to log in. ``identity``: a key file for every host; by default each host's
    EC2 key pair (``~/.ssh/<KeyName>[.pem]``), else the ssh agent."""

    user: str = DEFAULT_USER
    identity: Path | None = None


def known_hosts_file(project: Project) -> Path:
    """The project's own known_hosts (``.perfops/known_hosts``), its folder made."""
    path = project.root / KNOWN_HOSTS
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def load(project: Project, *, stack: str | None = None, region: str | None = None) -> Fleet:
    """Every host of the project (or of one stack / region), read from AWS."""
    scopes = fleet_scope(project)
    chosen = scopes
    if stack is not None:
        chosen = tuple(s for s in scopes if s.stack == stack)
        if not chosen:
            known = ", ".join(sorted({s.stack for s in scopes})) or "none"
            raise PerfOpsError(f"--stack: {stack!r} is not a stack of this project ({known})")
    regions = sorted({r for s in chosen for r in s.regions})
    if region is not None:
        check_region(region, "--region")
        if region not in regions:
            raise PerfOpsError(
                f"--region: {region!r} is not a region this project's hosts use "
                f"({', '.join(regions) or 'none'})"
            )
        regions = [region]
    instances = ec2_hosts.describe_regions(regions, sorted({s.uuid for s in chosen}))
    found = plan.index_hosts(instances, scopes)
    if stack is not None:
        found = [h for h in found if h.stack == stack]
    return Fleet(scopes=chosen, hosts=tuple(found))


def list_hosts(
    project: Project,
    *,
    target: str | None = None,
    stack: str | None = None,
    region: str | None = None,
) -> Fleet:
    """``perfops hosts``: all hosts (any state but terminated), or those ``target`` names."""
    fleet = load(project, stack=stack, region=region)
    if target is None:
        return fleet
    chosen = plan.select(fleet.hosts, Target.parse(target), live_only=False)
    return attrs.evolve(fleet, hosts=tuple(chosen))


def resolve(project: Project, target: str, *, stack: str | None = None) -> list[FleetHost]:
    """The live hosts a target names (see ``Target.parse``)."""
    parsed = Target.parse(target)
    fleet = load(project, stack=stack)
    chosen = plan.select(fleet.hosts, parsed)
    for host in chosen:
        if host.index is None:
            raise PerfOpsError(
                f"{host.instance.instance_id} is {host.instance.state}, not running; "
                "nothing to connect to"
            )
    return chosen


def identity_for(host: FleetHost, access: Access, *, required: bool) -> Path | None:
    """The key file to log in with, or None to let ssh use the agent (or its defaults).

    With ``required``, a host whose key pair has no file here and no agent to fall
    back on is an error naming where we looked.
    """
    if access.identity is not None:
        if not access.identity.is_file():
            raise PerfOpsError(f"--identity: {str(access.identity)!r} is not a file")
        return access.identity.resolve()
    key_name = host.instance.key_name
    found = ssh.find_identity(key_name)
    if found is None and required and key_name and not ssh.agent_available():
        raise PerfOpsError(
            f"{host.label}: no key for its key pair {key_name!r}: looked for "
            f"~/.ssh/{key_name} and ~/.ssh/{key_name}.pem, and no ssh agent is running "
            "(SSH_AUTH_SOCK); pass --identity FILE or add the key to an agent"
        )
    return found


def destinations(
    project: Project, hosts: Sequence[FleetHost], access: Access
) -> list[ssh.Destination]:
    """How to reach each host; refuses (before anything runs) a host without public IP
    or without a key."""
    known_hosts = known_hosts_file(project)
    reached = []
    for host in hosts:
        address = host.instance.public_ip
        if address is None:
            raise PerfOpsError(
                f"{host.label} ({host.instance.instance_id}) has no public IP address; "
                "perfops reaches hosts over their public IP"
            )
        identity = identity_for(host, access, required=True)
        options = plan.ssh_options(
            host, user=access.user, identity=identity, known_hosts=known_hosts
        )
        reached.append(ssh.Destination(host.label, address, tuple(options)))
    return reached


def login_destination(
    project: Project, target: str, hosts: Sequence[FleetHost], access: Access
) -> ssh.Destination:
    """The one host an interactive login goes to; a target of several is refused."""
    if len(hosts) > 1:
        labels = ", ".join(h.label for h in hosts[:5]) + (", ..." if len(hosts) > 5 else "")
        raise PerfOpsError(
            f"target {target!r} is {len(hosts)} hosts ({labels}); "
            "give a command after -- to run on all, or name one host"
        )
    [destination] = destinations(project, hosts, access)
    return destination


def run_command(
    project: Project,
    hosts: Sequence[FleetHost],
    command: str,
    access: Access,
    *,
    parallel: int = DEFAULT_PARALLEL,
    on_line: ssh.LineSink | None = None,
) -> list[ssh.Outcome]:
    """Run ``command`` on every host, ``parallel`` at a time; outcomes in host order."""
    targets = destinations(project, hosts, access)
    return ssh.run_all([(t, command) for t in targets], parallel=parallel, on_line=on_line)


def failure_hint(outcome: ssh.Outcome, known_hosts: Path) -> str:
    """A next step for the failures people meet most."""
    if "Host key verification failed" in outcome.last_error:
        return (
            f"host key changed; if the host was rebuilt: ssh-keygen -R <instance id> "
            f"-f {known_hosts}"
        )
    return ""


def ssh_config(
    project: Project, access: Access, *, target: str | None = None, stack: str | None = None
) -> str:
    """``perfops ssh-config``: a ``Host`` block per live host, to Include from ~/.ssh/config."""
    fleet = load(project, stack=stack)
    hosts = fleet.hosts
    if target is not None:
        hosts = tuple(plan.select(hosts, Target.parse(target)))
    plan.check_unique_labels(hosts)
    known_hosts = known_hosts_file(project).resolve()
    entries = [
        (
            host,
            plan.ssh_options(
                host,
                user=access.user,
                identity=identity_for(host, access, required=False),
                known_hosts=known_hosts,
            ),
        )
        for host in hosts
        if host.index is not None
    ]
    return plan.render_ssh_config(entries)


def clients(
    project: Project,
    access: Access,
    *,
    target: str | None = None,
    stack: str | None = None,
    parallel: int = DEFAULT_PARALLEL,
) -> list[ClientRow]:
    """``perfops clients``: ask every live host for its spawner status; sum per group.

    Hosts that cannot be asked (no public IP, no key) count as unreachable instead of
    stopping the report.
    """
    fleet = load(project, stack=stack)
    hosts = [h for h in fleet.hosts if h.index is not None]
    if target is not None:
        hosts = plan.select(hosts, Target.parse(target))
    statuses: dict[str, HostStatus] = {}
    reachable: list[FleetHost] = []
    jobs: list[tuple[ssh.Destination, str]] = []
    for host in hosts:
        try:
            [destination] = destinations(project, [host], access)
        except PerfOpsError as error:
            statuses[host.instance.instance_id] = HostStatus(error=str(error), unreachable=True)
            continue
        reachable.append(host)
        jobs.append((destination, STATUS_COMMAND))
    outcomes = ssh.run_all(jobs, parallel=parallel, capture=True) if jobs else []
    for host, outcome in zip(reachable, outcomes, strict=True):
        statuses[host.instance.instance_id] = HostStatus.from_run(
            outcome.exit_code, outcome.stdout, outcome.last_error
        )
    return client_rows(hosts, statuses)


def local_ports(count: int, remote_port: int, local_port: int | None) -> list[int]:
    """Local ports for ``count`` tunnels.

    ``local_port`` given: exactly local_port, local_port + 1, ... (each must be free);
    0 asks the kernel for each. Not given: the first free ports from ``remote_port``
    upward (within ``PORT_SCAN``), then the kernel's.
    """
    if local_port is not None:
        if local_port == 0:
            return [ssh.ephemeral_port() for _ in range(count)]
        wanted = list(range(local_port, local_port + count))
        if wanted[-1] > 65535:
            raise PerfOpsError(f"--local-port: {local_port} + {count} hosts passes 65535")
        busy = [p for p in wanted if not ssh.port_free(p)]
        if busy:
            raise PerfOpsError(
                f"--local-port: 127.0.0.1:{busy[0]} is in use; pick another or pass 0"
            )
        return wanted
    ports: list[int] = []
    candidate = remote_port
    while len(ports) < count and candidate <= min(65535, remote_port + PORT_SCAN):
        if ssh.port_free(candidate):
            ports.append(candidate)
        candidate += 1
    while len(ports) < count:
        port = ssh.ephemeral_port()
        if port not in ports:
            ports.append(port)
    return ports


def start_tunnels(
    project: Project,
    hosts: Sequence[FleetHost],
    access: Access,
    *,
    remote_port: int,
    local_port: int | None = None,
    parallel: int = DEFAULT_PARALLEL,
    on_line: ssh.LineSink | None = None,
) -> list[ssh.Tunnel]:
    """One ``ssh -L`` per host, all up (or failed) when this returns, in host order.

    A port taken between our check and ssh's bind is retried on another port, unless
    the user chose the port.
    """
    if not 1 <= remote_port <= 65535:
        raise PerfOpsError(f"--port: {remote_port} is not a TCP port (1..65535)")
    targets = destinations(project, hosts, access)
    ports = local_ports(len(targets), remote_port, local_port)

    def start(pair: tuple[ssh.Destination, int]) -> ssh.Tunnel:
        destination, port = pair
        for _ in range(PORT_ATTEMPTS):
            tunnel = ssh.start_tunnel(destination, port, remote_port, on_line)
            retry = local_port is None and "forwarding" in tunnel.error
            if not retry:
                return tunnel
            port = ssh.ephemeral_port()
        return tunnel

    # Workers record each tunnel as soon as it exists, so an interruption while others
    # are still starting stops every ssh that was started.
    started: list[ssh.Tunnel] = []

    def start_and_record(pair: tuple[ssh.Destination, int]) -> ssh.Tunnel:
        tunnel = start(pair)
        started.append(tunnel)
        return tunnel

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(targets)))) as pool:
            in_order = list(pool.map(start_and_record, zip(targets, ports, strict=True)))
    except BaseException:
        ssh.stop_tunnels(started)
        raise
    return in_order
