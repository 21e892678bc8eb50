"""Ask a project's app which images it declares and which regions its deployments use."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from perfops_cdk.app import ImageRequirement
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.project import Project


def project_requirements(project: Project) -> list[ImageRequirement]:
    """Run ``<app> --list-images`` in the project (the app's own error on failure).

    Listing never reads ``state.json`` (requirements do not depend on it), so a corrupt
    one cannot keep ``images list --rebuild-state`` from repairing it.
    """
    result = subprocess.run(
        [*project.app, "--list-images"],
        cwd=project.root,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PerfOpsError(result.stderr.strip().removeprefix("error: ") or "app failed")
    return _parse(result.stdout, "--list-images")


def requirements_from_file(path: Path) -> list[ImageRequirement]:
    """Requirements an app wrote as ``--list-images`` prints them (``--sync-amis`` does)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise PerfOpsError(f"{path}: cannot read image requirements ({error.strerror})") from None
    return _parse(text, str(path))


def _parse(text: str, source: str) -> list[ImageRequirement]:
    try:
        raw: list[dict[str, Any]] = json.loads(text)
        return [ImageRequirement.from_json(entry) for entry in raw]
    except (ValueError, TypeError, KeyError) as error:
        raise PerfOpsError(f"{source}: not a list of image requirements ({error})") from None
