"""A local backend's Terraform state file, read and emptied without Terraform.

Reading it directly is what ``terraform state pull`` prints, without a Terraform
start. Emptying it is what a destroy leaves (no resources, no outputs, the next
serial, the same lineage), written under the lock Terraform itself takes on the file
(an exclusive ``fcntl`` lock on the whole file), after a copy to ``<state>.backup``
as Terraform keeps one. Any other backend goes through Terraform.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from perfops_cdk.errors import EffectError


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
        emptied = {
            **state,
            "serial": int(state.get("serial", 0)) + 1,
            "outputs": {},
            "resources": [],
            "check_results": None,
        }
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(emptied, indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
