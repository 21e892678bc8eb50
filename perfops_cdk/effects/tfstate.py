"""Terraform state read and emptied as a destroy leaves it (no resources, no outputs,
the next serial, the same lineage).

A local backend's file is read directly (what ``terraform state pull`` prints, without
a Terraform start) and emptied under the lock Terraform itself takes on the file (an
exclusive ``fcntl`` lock on the whole file), after a copy to ``<state>.backup`` as
Terraform keeps one. Any other backend (S3State) is written back through Terraform's
own ``state push``: the backend's lock, and Terraform's refusal of a state whose
lineage differs or whose serial is not newer than what the backend holds.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from perfops_cdk.effects.terraform_events import last_error_line
from perfops_cdk.errors import EffectError
from perfops_cdk.planners.leftovers import version


def read(path: Path, stack: str) -> dict[str, Any]:
    """The state at ``path``, ``{}`` when there is none."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise EffectError(f"{stack}: cannot read state {path}: {error}") from None
    return _parse(text, path, stack)


def _parse(text: str, path: Path, stack: str) -> dict[str, Any]:
    try:
        found: dict[str, Any] = json.loads(text) if text.strip() else {}
    except ValueError:
        raise EffectError(f"{stack}: state {path} is not JSON") from None
    return found


def empty(path: Path, stack: str) -> None:
    """Leave the state at ``path`` as a destroy leaves it. Raises EffectError when a
    Terraform run holds its lock."""
    try:
        handle = path.open("r+")
    except FileNotFoundError:
        return
    except OSError as error:
        raise EffectError(f"{stack}: cannot open state {path}: {error}") from None
    with handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise EffectError(f"{stack}: state {path} is locked by a Terraform run") from None
        text = handle.read()
        state = _parse(text, path, stack)
        if not state:
            return
        backup = path.with_name(path.name + ".backup")
        backup.write_text(text)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(emptied(state), indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def emptied(state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` as a destroy leaves it."""
    return {
        **state,
        "serial": int(state.get("serial", 0)) + 1,
        "outputs": {},
        "resources": [],
        "check_results": None,
    }


Run = Callable[..., "subprocess.CompletedProcess[str]"]


def push_emptied(
    state: Mapping[str, Any], read_as: tuple[str, int] | None, run: Run, stack: str
) -> None:
    """Write ``state`` back emptied through ``terraform state push`` (``run`` runs
    Terraform in the stack's directory). Refuses when the backend's state is no longer
    the one read as ``read_as`` (lineage, serial): something applied meanwhile, and its
    resources would drop out of the state while they still run."""
    if not state:
        return
    if read_as is not None and version(state) != read_as:
        raise EffectError(
            f"{stack}: the state changed while perfops emptied it (serial {read_as[1]}, now "
            f"{version(state)}); run the destroy again"
        )
    with tempfile.TemporaryDirectory(prefix="perfops-state-") as private:
        path = Path(private) / "emptied.tfstate"
        # Terraform refuses a different state under the serial it holds, and advances
        # the serial of what it writes once more itself.
        path.write_text(json.dumps(emptied(state), indent=2) + "\n")
        result = run("state", "push", "-no-color", str(path), capture=True, check=False)
    if result.returncode != 0:
        why = last_error_line(result.stderr)
        raise EffectError(f"{stack}: cannot write the emptied state: {why}")
