"""Virtualenvs for tests that need other packages than .venv, made once and cached.

They live in ``.perfops/venvs/<name>`` (git-ignored), so a fresh clone makes them on its
first ``make test`` and later runs of the same checkout reuse them. A venv is rebuilt
when what it should hold changes (the pins read from pyproject.toml, the interpreter);
a build that died half-way has no stamp and is rebuilt. An "overlay" venv installs only
its own packages and sees .venv's beneath them (``site.addsitedir`` in a .pth file), so
it pays only for what it adds.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".perfops" / "venvs"
STAMP = ".perfops-venv"


class NotInstallable(RuntimeError):
    """pip could not install the packages (e.g. the package index is out of reach)."""

    def __init__(self, packages: Sequence[str], stderr: str) -> None:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        self.reason = f"pip cannot install {' '.join(packages)}: {(lines or ['no output'])[-1]}"
        super().__init__(f"{self.reason}\n{stderr}")


def pyproject() -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data


def runtime_pins(without: Sequence[str] = ()) -> list[str]:
    """The project's runtime dependencies as pinned, minus the named distributions."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    pins: list[str] = project["dependencies"]
    return [p for p in pins if _dist(p) not in without]


def extra_pins(extra: str) -> list[str]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    pins: list[str] = project["optional-dependencies"][extra]
    return pins


def _dist(pin: str) -> str:
    return pin.split("==")[0].split("[")[0].strip().lower()


def ensure(name: str, packages: Sequence[str], *, overlay: bool = False) -> Path:
    """The python of venv ``name`` holding ``packages`` (pinned); built if missing.

    An overlay venv installs ``packages`` without their dependencies: those come
    from .venv, which it sees beneath its own site-packages.
    """
    folder = VENVS / name
    main_site = sysconfig.get_paths()["purelib"]
    key = json.dumps(
        {
            "packages": sorted(packages),
            "overlay": main_site if overlay else None,
            "python": sys.version,
            "base": sys.base_prefix,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()
    python = folder / "bin" / "python"
    VENVS.mkdir(parents=True, exist_ok=True)
    with (VENVS / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent run waits, then reuses
        stamp = folder / STAMP
        if stamp.is_file() and stamp.read_text() == digest and python.exists():
            return python
        shutil.rmtree(folder, ignore_errors=True)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        install = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        if overlay:
            install.append("--no-deps")
        done = subprocess.run([*install, *packages], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise NotInstallable(packages, done.stderr)
        if overlay:
            site = subprocess.run(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            # A plain path line would skip .venv's own .pth files (the editable
            # perfops_cdk among them); addsitedir processes them.
            (Path(site) / "perfops-main-venv.pth").write_text(
                f"import site; site.addsitedir({main_site!r})\n"
            )
        (folder / "build-seconds").write_text(f"{time.monotonic() - started:.0f}\n")
        stamp.write_text(digest)
    return python


def ensure_or_skip(name: str, packages: Sequence[str], *, overlay: bool = False) -> Path:
    """``ensure``, or the calling test skipped naming pip's error when the packages
    cannot be installed here; any other failure fails the test."""
    try:
        return ensure(name, packages, overlay=overlay)
    except NotInstallable as error:
        pytest.skip(error.reason)
