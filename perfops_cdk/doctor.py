"""``perfops doctor``: is every outside tool here, and where does terraform get aws?"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import attrs

from perfops_cdk.effects import terraform


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
