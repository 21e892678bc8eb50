"""The stack ledger (``perfops-stacks.json``): every region stack that may hold resources.

Terraform needs a stack's provider and backend to destroy what the stack created, so a
region stack must outlive its declaration until its state is empty. Synthesis records
every region a PerfOpsStack declares here (never removing any), keeps an empty region
stack for each recorded region the code no longer declares, and ``perfops deploy``
removes a region only after Terraform reported its state empty. ``perfops deploy`` also
records each region stack's backend and provider blocks, so a stack removed from the
app altogether can still be destroyed.

Written atomically under an exclusive lock, like the image state file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from perfops_cdk.effects.state_file import write_atomically
from perfops_cdk.errors import PerfOpsError

LEDGER_FILE = "perfops-stacks.json"
LEDGER_VERSION = 1


@attrs.frozen
class RegionStack:
    """One region stack of one app stack, and what Terraform needs to destroy it."""

    name: str
    app_stack: str
    region: str
    uuid: str = ""  # the deployer's, so a stack removed from the app can still be found
    # The synthesized "terraform" (backend) and "provider" blocks, once deployed.
    terraform: dict[str, Any] = attrs.field(factory=dict)
    provider: dict[str, Any] = attrs.field(factory=dict)
    # Hash of the last synthesized stack JSON that applied cleanly ("" if none).
    applied: str = ""
    # Deployment -> on-demand hosts launched as fallback for spot (planners/capacity.py).
    fallback: dict[str, int] = attrs.field(factory=dict)


@attrs.frozen
class Ledger:
    stacks: dict[str, RegionStack] = attrs.field(factory=dict)

    def regions_of(self, app_stack: str) -> list[str]:
        return sorted(s.region for s in self.stacks.values() if s.app_stack == app_stack)

    def app_stacks(self) -> list[str]:
        return sorted({s.app_stack for s in self.stacks.values()})


def state_dir_for(project_dir: Path, endpoint: str | None) -> Path:
    """Where image state, the stack ledger and local Terraform state live: the project
    for a real account, a directory per emulator endpoint for rehearsals."""
    if not endpoint:
        return project_dir
    where = urllib.parse.urlsplit(endpoint)
    label = re.sub(r"[^A-Za-z0-9.-]", "_", f"{where.hostname}_{where.port or 0}")
    return project_dir / ".perfops" / "emulator" / label


_THREADS = threading.Lock()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive for the block, across threads and processes; waits for the holder.

    Region stacks finish concurrently and each updates the ledger, so unlike the image
    sync's lock this one queues instead of refusing.
    """
    target = path.with_name(f"{path.name}.lock")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _THREADS:
        fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def load(path: Path) -> Ledger:
    """The ledger at ``path``; an absent file is an empty ledger."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return Ledger()
    except (OSError, ValueError) as error:
        raise PerfOpsError(f"{path}: cannot read the stack ledger ({error})") from None
    try:
        if raw.get("version") != LEDGER_VERSION:
            raise TypeError(f"version {raw.get('version')!r}")
        stacks = {name: RegionStack(name=name, **entry) for name, entry in raw["stacks"].items()}
    except (AttributeError, KeyError, TypeError) as error:
        raise PerfOpsError(
            f"{path}: not a perfops stack ledger of version {LEDGER_VERSION} ({error}); "
            "restore it from a backup, or move it away once every region is destroyed"
        ) from None
    return Ledger(stacks=stacks)


def _save(path: Path, ledger: Ledger) -> None:
    entries = {
        name: attrs.asdict(stack, filter=lambda a, _: a.name != "name")
        for name, stack in sorted(ledger.stacks.items())
    }
    text = json.dumps({"version": LEDGER_VERSION, "stacks": entries}, indent=2, sort_keys=True)
    write_atomically(path, text + "\n")


def record_regions(path: Path, app_stack: str, names: Mapping[str, str], uuid: str = "") -> None:
    """Add region stacks (region -> stack name) of ``app_stack``; existing ones stay."""
    current = load(path)
    missing = {r: n for r, n in names.items() if n not in current.stacks}
    if not missing:
        return
    with locked(path):
        ledger = load(path)
        stacks = dict(ledger.stacks)
        for region, name in missing.items():
            stacks.setdefault(
                name, RegionStack(name=name, app_stack=app_stack, region=region, uuid=uuid)
            )
        _save(path, Ledger(stacks=stacks))


def update(path: Path, name: str, **changes: Any) -> None:
    """Change fields of one recorded region stack (no-op if it is not recorded)."""
    with locked(path):
        ledger = load(path)
        stack = ledger.stacks.get(name)
        if stack is None:
            return
        _save(path, Ledger(stacks={**ledger.stacks, name: attrs.evolve(stack, **changes)}))


def forget(path: Path, names: Iterable[str]) -> None:
    """Drop region stacks whose state Terraform reported empty."""
    gone = set(names)
    if not gone:
        return
    with locked(path):
        ledger = load(path)
        _save(path, Ledger({n: s for n, s in ledger.stacks.items() if n not in gone}))
