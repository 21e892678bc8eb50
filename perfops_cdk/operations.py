"""What the CLI's commands do, as library functions that return data."""

from __future__ import annotations

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


def deploy(
    project: Project, *, auto_approve: bool, stack: str | None = None, quiet: bool = False
) -> list[str]:
    """Synthesize, then ``terraform init`` and ``apply`` every stack.

    Returns terraform's summary per stack (only captured when ``quiet``).
    """
    project.synth()
    summaries = []
    for workspace in workspaces(project, stack):
        workspace.init()
        summaries.append(workspace.apply(auto_approve=auto_approve, quiet=quiet))
    return summaries


def destroy(
    project: Project, *, auto_approve: bool, stack: str | None = None, quiet: bool = False
) -> list[str]:
    """Synthesize, then ``terraform destroy`` every stack."""
    project.synth()
    summaries = []
    for workspace in workspaces(project, stack):
        workspace.init()
        summaries.append(workspace.destroy(auto_approve=auto_approve, quiet=quiet))
    return summaries


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
