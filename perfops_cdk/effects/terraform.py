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

from perfops_cdk.effects import provider, tfstate
from perfops_cdk.effects.aws import endpoint_url
from perfops_cdk.effects.terraform_events import (
    Outcome,
    Plan,
    changes_in,
    event_errors,
    last_error_line,
    outcome_of,
)
from perfops_cdk.errors import EffectError

MIRROR_ENV = "PERFOPS_TF_PROVIDER_MIRROR"
CONFIG_ENV = "TF_CLI_CONFIG_FILE"
AWS_PROVIDER = provider.AWS_PROVIDER
# Terraform and its provider plugins are Go programs; the AWS provider builds ~1,600
# resource schemas on every start, so most of a deploy's CPU is garbage collection of
# start-up garbage. GOGC=400 (collect at 5x the live heap instead of 2x) cut the CPU of
# a 40-host deploy by about a third for ~15% more memory per provider
# (docs/benchmarks.md, "Go GC"). A run attached to one provider process takes its own
# settings (effects/provider.py). A GOGC the user sets wins.
GO_GC = "400"

MIRROR_CANDIDATES = (
    "/opt/tf-plugins",
    "/usr/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
)


def terraform_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every Terraform run: GOGC unless the user set one, and in a
    rehearsal the emulator's endpoint as ``AWS_ENDPOINT_URL``, which the provider and
    the S3 backend read. (A rehearsal's providers hold no ``endpoints`` block: the
    provider spends about 3 CPU-seconds validating that block on every start, three or
    four starts per run; docs/design.md.)"""
    env = {"GOGC": GO_GC, **os.environ, "TF_IN_AUTOMATION": "1"}
    endpoint = endpoint_url()
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return {**env, **(extra or {})}


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
    result = subprocess.run(
        [binary, *argv],
        cwd=cwd,
        env=terraform_env(env),
        text=True,
        capture_output=capture,
        check=False,
    )
    if check and result.returncode != 0:
        detail = last_error_line(result.stderr) if capture else "see its output above"
        raise EffectError(f"terraform {argv[0]} in {cwd}: failed ({detail})")
    return result


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


PLAN_FILE = "perfops.tfplan"
# Terraform's own graph walk: fleets make few resources, so more does not help much;
# raising it helps a region with many security groups or deployments.
DEFAULT_PARALLELISM = 20


class Workspace:
    """One synthesized stack directory (``cdktf.out/stacks/<name>``) to run terraform in.

    ``plan``/``apply_plan`` speak Terraform's machine-readable UI (``-json``): the
    changes and errors are read from its events, and a readable log of every run goes
    to ``log_dir/<stack>.log`` (the one place to look when a region fails).
    """

    def __init__(self, stack_dir: Path, project_dir: Path, log_dir: Path | None = None) -> None:
        self.dir = stack_dir
        self.project_dir = project_dir
        self.env = cli_config(project_dir)
        self.log = (log_dir or project_dir / ".perfops" / "logs") / f"{stack_dir.name}.log"

    def _run(
        self, *argv: str, capture: bool = False, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run(argv, cwd=self.dir, env=self.env, capture=capture, check=check)

    def init(self) -> None:
        """``terraform init``, skipped when this stack was initialized for the same
        backend and providers (init costs seconds per stack; most deploys change hosts,
        not backends). In a rehearsal each emulator is a world of its own, its state
        kept under its endpoint: a new emulator (a second ``make demo``) is a new
        backend to start from (``-reconfigure``), not one to migrate the old state to.
        Against AWS a changed backend stays Terraform's question to the user."""
        key = self._init_key()
        stamp = self.dir / ".terraform" / "perfops-init"
        lock = self.dir / ".terraform.lock.hcl"
        if stamp.is_file() and lock.is_file() and stamp.read_text() == key:
            return
        fresh = ["-reconfigure"] if endpoint_url() else []
        self._run("init", "-input=false", "-no-color", *fresh, capture=True)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(key)

    def _terraform_block(self) -> dict[str, Any] | None:
        """The stack's ``terraform`` block (backend, providers), None when unreadable."""
        try:
            block: dict[str, Any] = json.loads((self.dir / "cdk.tf.json").read_text()).get(
                "terraform", {}
            )
        except (OSError, ValueError, AttributeError):
            return None
        return block

    def _init_key(self) -> str:
        block = self._terraform_block()
        if block is None:
            return ""
        return json.dumps(block, sort_keys=True) + json.dumps(self.env)

    def _events(self, argv: list[str]) -> tuple[int, list[dict[str, Any]]]:
        """Run terraform with ``-json``; its events, and a readable log of them."""
        # One provider process for the whole run (effects/provider.py).
        with provider.attached(
            self.dir,
            terraform_env(self.env),
            self.log,
            rehearsal=endpoint_url(),
            hashes=self.project_dir / ".perfops" / "provider-hashes.json",
        ) as attach:
            # Flags before the plan file, Terraform's one positional argument.
            result = run(
                [argv[0], "-json", *argv[1:]],
                cwd=self.dir,
                env={**self.env, **attach},
                capture=True,
                check=False,
            )
        events = []
        for line in (result.stdout or "").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            log.write(f"$ terraform {' '.join(argv)}\n")
            for event in events:
                log.write(f"{event.get('@message', '')}\n")
                detail = event.get("diagnostic", {}).get("detail")
                if detail:
                    log.write(f"  {detail}\n")
            if result.stderr:
                log.write(result.stderr)
        return result.returncode, events

    def plan(
        self,
        *,
        destroy: bool = False,
        replace: Sequence[str] = (),
        parallelism: int = DEFAULT_PARALLELISM,
    ) -> Plan:
        """Plan (to destroy everything, with ``destroy``; replacing the ``replace``
        addresses) and save it for ``apply_plan``."""
        plan_file = self.dir / PLAN_FILE
        plan_file.unlink(missing_ok=True)
        argv = [
            "plan",
            "-input=false",
            "-detailed-exitcode",
            f"-parallelism={parallelism}",
            f"-out={PLAN_FILE}",
            *(["-destroy"] if destroy else []),
            *(f"-replace={address}" for address in replace),
        ]
        code, events = self._events(argv)
        errors = event_errors(events, code)
        if code == 1 or errors:
            raise EffectError(f"{self.dir.name}: plan failed: {errors[0] if errors else code}")
        return Plan(changes=changes_in(events), plan_file=plan_file if code == 2 else None)

    def apply_plan(self, plan: Plan, *, parallelism: int = DEFAULT_PARALLELISM) -> Outcome:
        """Carry out a saved plan; Terraform's errors come back in the outcome."""
        if plan.plan_file is None:
            return Outcome()
        argv = ["apply", "-input=false", f"-parallelism={parallelism}", PLAN_FILE]
        code, events = self._events(argv)
        plan.plan_file.unlink(missing_ok=True)
        return outcome_of(events, code)

    def apply_now(
        self,
        *,
        destroy: bool = False,
        replace: Sequence[str] = (),
        parallelism: int = DEFAULT_PARALLELISM,
    ) -> tuple[Plan, Outcome]:
        """Plan and apply in one Terraform run, unconfirmed (``-y``): one provider start
        fewer than a saved plan, which matters when every start costs seconds."""
        argv = [
            "apply",
            "-input=false",
            "-auto-approve",
            f"-parallelism={parallelism}",
            *(["-destroy"] if destroy else []),
            *(f"-replace={address}" for address in replace),
        ]
        code, events = self._events(argv)
        return Plan(changes=changes_in(events), plan_file=None), outcome_of(events, code)

    def state(self) -> dict[str, Any]:
        """The stack's Terraform state, ``{}`` when none.

        A local backend's state file is read directly: it is what ``terraform state
        pull`` prints, and a pull costs about a CPU-second per stack (17 of them in a
        no-change deploy of 17 regions). Any other backend goes through Terraform.
        """
        local = self.local_state_file()
        if local is not None:
            return tfstate.read(local, self.dir.name)
        result = self._run("state", "pull", capture=True, check=False)
        if result.returncode != 0:
            raise EffectError(
                f"{self.dir.name}: cannot read state: {last_error_line(result.stderr)}"
            )
        try:
            data: dict[str, Any] = json.loads(result.stdout or "{}")
        except ValueError:
            return {}
        return data

    def empty_state(self, read_as: tuple[str, int] | None = None) -> None:
        """Leave the state as a destroy leaves it, once perfops removed every resource
        it held: a local file directly, any other backend through ``terraform state
        push``, refused when its state is no longer the one read as ``read_as``
        (lineage, serial; effects/tfstate.py)."""
        local = self.local_state_file()
        if local is not None:
            tfstate.empty(local, self.dir.name)
        else:
            tfstate.push_emptied(self.state(), read_as, self._run, self.dir.name)

    def local_state_file(self) -> Path | None:
        """The state file of a ``local`` backend (or of no backend), else None."""
        block = self._terraform_block()
        if block is None:
            return None
        backend = block.get("backend") or {"local": {}}
        if set(backend) != {"local"}:
            return None
        settings = backend["local"] or {}
        if set(settings) - {"path"}:
            return None  # workspace_dir and friends: let Terraform resolve it
        return self.dir / str(settings.get("path", "terraform.tfstate"))

    def validate(self) -> dict[str, Any]:
        result = self._run("validate", "-json", "-no-color", capture=True, check=False)
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    def apply(self) -> Outcome:
        """Plan and apply in one go (no confirmation); raises on Terraform errors."""
        outcome = self.apply_plan(self.plan())
        if outcome.errors:
            raise EffectError(f"{self.dir.name}: apply failed: {outcome.errors[0]}")
        return outcome

    def destroy(self) -> Outcome:
        """Destroy everything in the stack's state; raises on Terraform errors."""
        outcome = self.apply_plan(self.plan(destroy=True))
        if outcome.errors:
            raise EffectError(f"{self.dir.name}: destroy failed: {outcome.errors[0]}")
        return outcome

    def planned_changes(self) -> dict[str, str]:
        """Resource address -> action, for every resource a plan would change."""
        plan = self.plan()
        if plan.plan_file is not None:
            plan.plan_file.unlink(missing_ok=True)
        return {c.address: c.action for c in plan.changes}

    def outputs(self) -> dict[str, Any]:
        raw = json.loads(self._run("output", "-json", capture=True).stdout or "{}")
        return {name: entry.get("value") for name, entry in raw.items()}


def show_plan(plan: Plan) -> str:
    """A saved plan as Terraform prints it (for ``--verbose``)."""
    if plan.plan_file is None:
        return ""
    folder = plan.plan_file.parent
    env = cli_config(folder)
    return run(["show", "-no-color", plan.plan_file.name], cwd=folder, env=env, capture=True).stdout
