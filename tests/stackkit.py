"""Build small stacks for tests: a PerfOpsStack in a temp project, synthesized to JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from perfops_cdk import App, ImageAsset, PerfOpsStack
from perfops_cdk.app import synth

UUID = "testuuid1"
AMIS = {
    "eu-west-1": "ami-0123456789abcdef0",
    "us-east-1": "ami-0fedcba9876543210",
    "eu-central-1": "ami-00000000000000aaa",
}


def make_stack(
    project: Path, *, app: App | None = None, **options: Any
) -> tuple[PerfOpsStack, ImageAsset]:
    """A stack with uuid ``testuuid1`` and one prebuilt image in three regions."""
    project.mkdir(parents=True, exist_ok=True)
    stack = PerfOpsStack(
        app or App(outdir=str(project / "unused.out")),
        "perf-ops",
        uuid=UUID,
        project_dir=project,
        **options,
    )
    image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids=AMIS)
    return stack, image


def synth_json(
    project: Path,
    declare: Callable[[PerfOpsStack, ImageAsset], object],
    amis: Mapping[str, str] = AMIS,
) -> dict[str, dict[str, Any]]:
    """Synthesize the stack ``declare`` fills; every synthesized stack's Terraform JSON
    by stack name (``perf-ops`` and its region stacks ``perf-ops-<region>``)."""

    def define(app: App) -> None:
        stack = PerfOpsStack(app, "perf-ops", uuid=UUID, project_dir=project)
        image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids=amis)
        declare(stack, image)

    outdir = synth(define, project / "cdktf.out")
    return {
        folder.name: json.loads((folder / "cdk.tf.json").read_text())
        for folder in (outdir / "stacks").iterdir()
    }


def resources(stacks: Mapping[str, Mapping[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Every resource of ``kind`` across stacks, keyed ``<stack>/<logical id>``."""
    return {
        f"{name}/{logical}": body
        for name, data in stacks.items()
        for logical, body in data.get("resource", {}).get(kind, {}).items()
    }
