"""``perfops doctor``: is every outside tool here, and where does terraform get aws?
``perfops doctor --aws``: is the account ready for this app?"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import attrs

from perfops_cdk.effects import account, terraform
from perfops_cdk.effects.account import PROBE_GROUP
from perfops_cdk.errors import EffectError
from perfops_cdk.operations.loading import concurrently, load
from perfops_cdk.planners import account as checks
from perfops_cdk.planners.account import Finding, StateBackend
from perfops_cdk.project import Project
from perfops_cdk.props.regions import DEFAULT_REGIONS
from perfops_cdk.props.tags import MANAGED_BY, TAG_MANAGED_BY, TAG_NAME, TAG_STACK, TAG_UUID
from perfops_cdk.publishing.requirements import project_requirements


@attrs.frozen
class Check:
    name: str
    ok: bool
    detail: str


@attrs.frozen
class Report:
    checks: tuple[Check, ...]
    exports: dict[str, str]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.name in REQUIRED)


REQUIRED = frozenset({"terraform", "aws provider"})


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError as error:
        return str(error)
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def check_environment(project_dir: Path) -> Report:
    checks = []
    for name, argv in (
        ("terraform", ["terraform", "version"]),
        ("node", ["node", "--version"]),
        ("nix-build", ["nix-build", "--version"]),
    ):
        found = shutil.which(argv[0])
        checks.append(Check(name, found is not None, _version(argv) if found else "not on PATH"))
    cdktf = project_dir / "node_modules" / ".bin" / "cdktf"
    checks.append(
        Check("cdktf cli", cdktf.exists(), str(cdktf) if cdktf.exists() else "run: npm ci")
    )
    exports = terraform.cli_config(project_dir)
    mirror = terraform.find_mirror()
    if mirror is not None:
        checks.append(Check("aws provider", True, f"filesystem mirror {mirror}"))
    else:
        checks.append(
            Check(
                "aws provider",
                True,
                "from the public registry (no local mirror; set "
                f"{terraform.MIRROR_ENV} to a mirror root when offline)",
            )
        )
    return Report(checks=tuple(checks), exports=exports)


@attrs.frozen
class Scope:
    """What the app uses: regions, the deployer's tags, a host to dry-run, backends."""

    regions: tuple[str, ...]
    tags: dict[str, str]
    hosts: dict[str, tuple[str, str]]  # region -> (AMI, instance type)
    backends: tuple[StateBackend, ...]
    state_dir: str | None  # local state (None: S3, or not known)


@attrs.frozen
class AwsReport:
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not checks.failed(self.findings)


def app_scope(project: Project) -> Scope:
    """The regions, uuid and backends of the last synthesis (``cdktf.out``); without
    one, the regions the app's images are needed in (``--list-images``)."""
    if not (project.outdir / "manifest.json").is_file():
        needed = project_requirements(project)
        found = {r for req in needed for r in (*req.regions, req.home_region)}
        uuid = next((req.uuid for req in needed), "")
        stack = next((req.stack for req in needed), "")
        return Scope(tuple(sorted(found)), _tags(uuid, stack), {}, (), None)
    loaded = load(project)
    units = [u for u in loaded.units if u.region and u.uuid]
    hosts = {g.region: (g.ami, g.instance_types[0]) for u in units for g in u.groups}
    declared = [
        backend
        for name in project.stacks()
        if (backend := StateBackend.from_stack(project.stack_json(name))) is not None
    ]
    # One bucket holds every region stack's key: check it once, naming the app's key.
    backends: dict[tuple[str, str], StateBackend] = {}
    for each in sorted(declared, key=lambda b: (len(b.key), b.key)):
        backends.setdefault((each.bucket, each.region), each)
    first = units[0] if units else None
    state_dir = None
    if not backends and first is not None and first.state_dir:
        stack_dir = project.stack_dir(first.name)
        state_dir = os.path.relpath((stack_dir / first.state_dir).resolve(), project.root)
    return Scope(
        regions=tuple(sorted({u.region for u in units if u.region})),
        tags=_tags(first.uuid or "", first.app_stack or "") if first else {},
        hosts=hosts,
        backends=tuple(backends[k] for k in sorted(backends)),
        state_dir=state_dir,
    )


def _tags(uuid: str, stack: str) -> dict[str, str]:
    return {TAG_NAME: PROBE_GROUP, TAG_UUID: uuid, TAG_STACK: stack, TAG_MANAGED_BY: MANAGED_BY}


def _anchor(regions: tuple[str, ...]) -> str:
    """A region enabled in every account, for the account-wide calls."""
    return next((r for r in regions if r in DEFAULT_REGIONS), "us-east-1")


def check_aws(project: Project, *, parallel: int = 8) -> AwsReport:
    """Who is calling, the app's regions, the state bucket, and missing permissions:
    read-only calls only (DryRun for the creates)."""
    scope = app_scope(project)
    anchor = _anchor(scope.regions)
    try:
        who = account.caller(anchor)
    except EffectError as error:
        return AwsReport((checks.no_identity(str(error)),))
    findings = [checks.identity(who.account, who.arn)]
    enabled: list[str] = []
    try:
        statuses = account.region_statuses(anchor)
        findings += checks.regions(scope.regions, statuses, who.account)
        enabled = [r for r in scope.regions if statuses.get(r) in checks.ENABLED]
    except EffectError as error:
        findings.append(checks.no_regions(str(error)))
    for backend in scope.backends:
        found = account.bucket(backend.bucket, backend.region)
        findings.append(checks.state_bucket(backend, found.exists, found.versioning, found.error))
    if scope.state_dir is not None:
        findings.append(checks.local_state(scope.state_dir))
    calls = [
        (region, call)
        for region in enabled
        for call in account.probe_calls(scope.tags, *scope.hosts.get(region, (None, None)))
    ]
    results = concurrently(calls, lambda c: account.dry_run(c[0], *c[1]), parallel)
    findings += checks.probes((p.region, p.action, p.outcome, p.detail) for p in results)
    context = {
        "aws:RequestTag/perf-ops": [scope.tags.get(TAG_UUID, "")],
        "aws:ResourceTag/perf-ops": [scope.tags.get(TAG_UUID, "")],
        "aws:TagKeys": [TAG_UUID],
        "ec2:CreateAction": ["RunInstances"],
        "iam:AWSServiceName": ["spot.amazonaws.com"],
    }
    try:
        decisions = account.simulate(anchor, who.principal_arn, checks.DEPLOYER_ACTIONS, context)
        findings += checks.simulation(decisions, checks.DEPLOYER_ACTIONS)
    except EffectError as error:
        findings.append(checks.no_simulation(str(error)))
    return AwsReport(tuple(findings))
