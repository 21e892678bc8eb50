"""The one seam that says where a project's hosts can be: ``fleet_scope(project)``.

``perfops hosts``, ``ssh``, ``ssh-config``, ``tunnel`` and ``clients`` find hosts by
their tags in AWS; all they need from the project is, per stack, the deployer uuid and
the regions to look in. Today that comes from the synthesized ``cdktf.out`` (the
manifest, then each stack's provider regions and the ``perf-ops`` tag of whatever it
declares), read without re-synthesizing; only when ``cdktf.out`` is absent does it
synthesize first. Nothing here reads Terraform state. When stacks are laid out
differently, this function is the one to re-point.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from perfops_cdk.errors import PerfOpsError
from perfops_cdk.planners.hosts import UUID_TAG, StackScope
from perfops_cdk.project import Project


def fleet_scope(project: Project) -> tuple[StackScope, ...]:
    """Per stack of the project: its deployer uuid and the regions it declares hosts in.

    A stack that declares nothing tagged (no deployment yet) has no scope.
    """
    if not (project.outdir / "manifest.json").is_file():
        project.synth()
    scopes = []
    for stack in project.stacks():
        try:
            stack_json = project.stack_json(stack)
        except (OSError, ValueError) as error:
            raise PerfOpsError(
                f"{project.stack_dir(stack)}: unreadable synth output ({error}); run perfops synth"
            ) from None
        regions = tuple(
            sorted({p["region"] for p in _aws_providers(stack_json) if p.get("region")})
        )
        for uuid in sorted(set(_uuid_tags(stack_json))):
            scopes.append(StackScope(stack=stack, uuid=uuid, regions=regions))
    return tuple(scopes)


def _aws_providers(stack_json: Mapping[str, Any]) -> list[dict[str, Any]]:
    providers = stack_json.get("provider", {}).get("aws", [])
    return [providers] if isinstance(providers, dict) else list(providers)


def _uuid_tags(node: Any) -> Iterator[str]:
    """Every ``perf-ops`` tag value anywhere in the stack (resources, launch templates,
    provider default tags), so the seam does not care which resource carries it."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("tags", "default_tags") and isinstance(value, dict):
                tag = value.get(UUID_TAG)
                if isinstance(tag, str) and tag and "${" not in tag:
                    yield tag
            yield from _uuid_tags(value)
    elif isinstance(node, list):
        for item in node:
            yield from _uuid_tags(item)
