"""What the CLI's commands do, as library functions that return data."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from perfops_cdk.effects import ec2_instances
from perfops_cdk.effects.terraform import Workspace
from perfops_cdk.planners.status import Host, StatusRow, planned_hosts, status_rows
from perfops_cdk.project import Project


def workspaces(project: Project, stack: str | None = None) -> list[Workspace]:
    names = project.stacks()
    if stack is not None:
        names = [n for n in names if n == stack]
    return [Workspace(project.stack_dir(n), project.root) for n in names]


def _each_stack(project: Project, stack: str | None, act: Callable[[Workspace], str]) -> list[str]:
    """Synthesize, then ``terraform init`` and ``act`` in every stack; their summaries."""
    project.synth()
    summaries = []
    for workspace in workspaces(project, stack):
        workspace.init()
        summaries.append(act(workspace))
    return summaries


def deploy(
    project: Project, *, auto_approve: bool, stack: str | None = None, quiet: bool = False
) -> list[str]:
    """Create or update every stack's resources (summaries captured only when ``quiet``)."""
    return _each_stack(project, stack, lambda ws: ws.apply(auto_approve=auto_approve, quiet=quiet))


def destroy(
    project: Project, *, auto_approve: bool, stack: str | None = None, quiet: bool = False
) -> list[str]:
    """Destroy every stack's resources."""
    return _each_stack(
        project, stack, lambda ws: ws.destroy(auto_approve=auto_approve, quiet=quiet)
    )


def status(project: Project, *, synth: bool = True) -> dict[str, list[StatusRow]]:
    """Per stack: hosts planned and running per deployment and region."""
    if synth:
        project.synth()
    result: dict[str, list[StatusRow]] = {}
    for stack in project.stacks():
        planned = planned_hosts(project.stack_json(stack))
        pairs = sorted({(p.region, p.uuid) for p in planned})
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(pairs)))) as pool:
            found = pool.map(lambda pair: ec2_instances.hosts(*pair), pairs)
        live: list[Host] = [host for hosts in found for host in hosts]
        result[stack] = status_rows(planned, live)
    return result
