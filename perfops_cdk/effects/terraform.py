"""The one seam to the terraform binary.

Terraform finds the hashicorp/aws provider in a local filesystem mirror when one is on
the machine (this machine has no route to the public registry); ``cli_config`` writes
the CLI configuration that says so.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from perfops_cdk.errors import EffectError

MIRROR_ENV = "PERFOPS_TF_PROVIDER_MIRROR"
CONFIG_ENV = "TF_CLI_CONFIG_FILE"
AWS_PROVIDER = "registry.terraform.io/hashicorp/aws"
MIRROR_CANDIDATES = (
    "/opt/tf-plugins",
    "/usr/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
)


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    capture: bool = False,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``terraform argv...`` in ``cwd``; every terraform call goes through here."""
    binary = shutil.which("terraform")
    if binary is None:
        raise EffectError("terraform: not found on PATH; install Terraform >= 1.10")
    full_env = {**os.environ, "TF_IN_AUTOMATION": "1", **(env or {})}
    result = subprocess.run(
        [binary, *argv],
        cwd=cwd,
        env=full_env,
        text=True,
        capture_output=capture,
        check=False,
    )
    if check and result.returncode != 0:
        detail = _last_error_line(result.stderr) if capture else "see its output above"
        raise EffectError(f"terraform {argv[0]} in {cwd}: failed ({detail})")
    return result


def _last_error_line(stderr: str | None) -> str:
    lines = [ln.strip(" │╷╵") for ln in (stderr or "").splitlines()]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    return (errors or [ln for ln in lines if ln] or ["no output"])[-1]


def find_mirror() -> Path | None:
    """A filesystem mirror that holds the hashicorp/aws provider for this platform."""
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
    target = f"{platform.system().lower()}_{arch}"
    explicit = os.environ.get(MIRROR_ENV)
    for candidate in [explicit] if explicit else MIRROR_CANDIDATES:
        root = Path(candidate).expanduser()
        if any((root / AWS_PROVIDER).glob(f"*/{target}/terraform-provider-aws*")):
            return root
    return None


def cli_config(project_dir: Path) -> dict[str, str]:
    """Environment that points terraform at the provider mirror, if needed.

    An existing ``TF_CLI_CONFIG_FILE`` is the user's choice and is kept.
    """
    current = os.environ.get(CONFIG_ENV)
    if current and Path(current).is_file():
        return {}
    mirror = find_mirror()
    if mirror is None:
        return {}
    path = project_dir / ".perfops" / "terraformrc"
    text = (
        "# Written by perfops_cdk: hashicorp/aws from the machine's provider mirror.\n"
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n'
        f'    include = ["{AWS_PROVIDER}"]\n  }}\n'
        f'  direct {{\n    exclude = ["{AWS_PROVIDER}"]\n  }}\n'
        "}\n"
    )
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return {CONFIG_ENV: str(path)}


class Workspace:
    """One synthesized stack directory (``cdktf.out/stacks/<name>``) to run terraform in."""

    def __init__(self, stack_dir: Path, project_dir: Path) -> None:
        self.dir = stack_dir
        self.env = cli_config(project_dir)

    def _run(
        self, *argv: str, capture: bool = False, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(argv, cwd=self.dir, env=self.env, capture=capture, check=check)

    def init(self) -> None:
        self._run("init", "-input=false", "-no-color", capture=True)

    def validate(self) -> dict[str, Any]:
        result = self._run("validate", "-json", "-no-color", capture=True, check=False)
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    def apply(self, *, auto_approve: bool = True, quiet: bool = False) -> str:
        """Apply; with ``quiet``, return terraform's summary line instead of printing."""
        return self._summary(
            self._run(
                "apply",
                "-input=false",
                "-no-color" if quiet else "-compact-warnings",
                *(["-auto-approve"] if auto_approve else []),
                capture=quiet,
            )
        )

    def destroy(self, *, auto_approve: bool = True, quiet: bool = False) -> str:
        return self._summary(
            self._run(
                "destroy",
                "-input=false",
                "-no-color" if quiet else "-compact-warnings",
                *(["-auto-approve"] if auto_approve else []),
                capture=quiet,
            )
        )

    @staticmethod
    def _summary(result: subprocess.CompletedProcess[str]) -> str:
        lines = [ln for ln in (result.stdout or "").splitlines() if "complete!" in ln]
        return lines[-1].strip() if lines else ""

    def plan_changes(self) -> bool:
        """True when a plan has changes (``-detailed-exitcode`` 2)."""
        result = self._run(
            "plan", "-input=false", "-no-color", "-detailed-exitcode", capture=True, check=False
        )
        if result.returncode not in (0, 2):
            raise EffectError(f"terraform plan in {self.dir}: {_last_error_line(result.stderr)}")
        return result.returncode == 2

    def planned_changes(self) -> dict[str, list[str]]:
        """Resource address -> actions, for every resource a plan would change."""
        self._run("plan", "-input=false", "-no-color", "-out=perfops.tfplan", capture=True)
        shown = self._run("show", "-json", "perfops.tfplan", capture=True).stdout
        (self.dir / "perfops.tfplan").unlink(missing_ok=True)
        changes = json.loads(shown).get("resource_changes", [])
        return {
            c["address"]: c["change"]["actions"]
            for c in changes
            if c["change"]["actions"] != ["no-op"]
        }

    def plan_text(self) -> str:
        return self._run("plan", "-input=false", "-no-color", capture=True).stdout

    def outputs(self) -> dict[str, Any]:
        raw = json.loads(self._run("output", "-json", capture=True).stdout or "{}")
        return {name: entry.get("value") for name, entry in raw.items()}
