"""The image sync state file (``state.json``): which AMI serves each image per region.

Written atomically (temp file, fsync, rename) so a crash never leaves half a file;
read by synthesis, which never builds or uploads. Holds ids only, never a secret.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import attrs

from perfops_cdk.errors import PerfOpsError

STATE_VERSION = 1
DEFAULT_STATE_FILE = "state.json"


@attrs.frozen
class RegionImage:
    """An image's artefacts in one region."""

    ami_id: str | None = None
    snapshot_id: str | None = None
    import_task_id: str | None = None
    state: str = "pending"


@attrs.frozen
class ImageRecord:
    """What a sync knows of one image: its content-derived AMI name and its regions."""

    ami_name: str
    home_region: str
    regions: dict[str, RegionImage] = attrs.field(factory=dict)


@attrs.frozen
class SyncState:
    images: dict[str, ImageRecord] = attrs.field(factory=dict)

    def ami_ids(self, image: str) -> dict[str, str]:
        """Available AMIs of ``image`` per region."""
        record = self.images.get(image)
        if record is None:
            return {}
        return {
            region: entry.ami_id
            for region, entry in record.regions.items()
            if entry.ami_id and entry.state == "available"
        }


def load(path: Path) -> SyncState:
    """The state at ``path``; an absent file is an empty state."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return SyncState()
    except (OSError, ValueError) as error:
        raise PerfOpsError(f"{path}: cannot read image state ({error})") from None
    if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
        raise PerfOpsError(f"{path}: not a perfops image state file of version {STATE_VERSION}")
    try:
        images = {
            name: ImageRecord(
                ami_name=entry["ami_name"],
                home_region=entry["home_region"],
                regions={r: RegionImage(**v) for r, v in entry.get("regions", {}).items()},
            )
            for name, entry in raw.get("images", {}).items()
        }
    except (KeyError, TypeError) as error:
        raise PerfOpsError(f"{path}: malformed image state ({error})") from None
    return SyncState(images=images)


def dump(state: SyncState) -> dict[str, Any]:
    return {"version": STATE_VERSION, "images": attrs.asdict(state)["images"]}


def save(path: Path, state: SyncState) -> None:
    """Write ``state`` atomically: readers see the old file or the new one, never half."""
    write_atomically(path, json.dumps(dump(state), indent=2, sort_keys=True) + "\n")


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
