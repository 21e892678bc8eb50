"""Ask a project's app which images it declares and which regions its deployments use.

The app is synthesized the way the cdktf CLI runs it, into a scratch directory and with
image collection on (placeholders stand in for AMIs not synced yet), and the image
manifest its PerfOpsStacks write at synthesis is read back (constructs/image.py). So
any app works: one run through ``perfops_cdk.app.main`` or a plain cdktf
``app.synth()``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from perfops_cdk.app import OUTDIR_ENV, ImageRequirement, requirements_from_outdir
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.jsii_env import COLLECT_IMAGES_CONTEXT, CONTEXT_ENV, NODE_WARNING_ENV
from perfops_cdk.project import CONFIG_FILE, Project

# The last line of a Python traceback: "perfops_cdk.errors.InvalidField: message".
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*: (.+)$")


def project_requirements(project: Project) -> list[ImageRequirement]:
    """Synthesize the app into a scratch directory and read its image manifest.

    Collecting never reads ``state.json`` (requirements do not depend on it), so a
    corrupt one cannot keep ``images list --rebuild-state`` from repairing it. The
    project's own ``cdktf.out`` is never touched. A failing app is one line.
    """
    with tempfile.TemporaryDirectory(prefix="perfops-images-") as scratch:
        outdir = Path(scratch) / "out"
        context = {**_config_context(project), COLLECT_IMAGES_CONTEXT: scratch}
        env = {
            **NODE_WARNING_ENV,
            **os.environ,
            OUTDIR_ENV: str(outdir),
            CONTEXT_ENV: json.dumps(context),
        }
        result = subprocess.run(
            project.app, cwd=project.root, env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise PerfOpsError(_app_error(result.stderr))
        return requirements_from_outdir(outdir)


def requirements_from_file(path: Path) -> list[ImageRequirement]:
    """Requirements an app wrote as ``--list-images`` prints them (``--sync-amis`` does)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise PerfOpsError(f"{path}: cannot read image requirements ({error.strerror})") from None
    try:
        raw: list[dict[str, Any]] = json.loads(text)
        return [ImageRequirement.from_json(entry) for entry in raw]
    except (ValueError, TypeError, KeyError) as error:
        raise PerfOpsError(f"{path}: not a list of image requirements ({error})") from None


def _config_context(project: Project) -> dict[str, Any]:
    """cdktf.json's "context", which the cdktf CLI hands to the app as well."""
    try:
        context = json.loads((project.root / CONFIG_FILE).read_text()).get("context")
    except (OSError, ValueError, AttributeError):
        return {}
    return dict(context) if isinstance(context, dict) else {}


def _app_error(stderr: str) -> str:
    """The app's error as one line: an app run through ``perfops_cdk.app.main`` prints
    ``error: ...``; a plain app's traceback ends with the exception and its message."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "the app failed and printed nothing"
    last = lines[-1]
    if last.startswith("error: "):
        return last.removeprefix("error: ")
    match = _EXCEPTION_LINE.match(last)
    return match.group(1) if match else last
