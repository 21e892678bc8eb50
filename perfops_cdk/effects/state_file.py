"""The image sync state file (``state.json``): which AMI serves each image per region.

Written atomically (temp file, fsync, rename) so a crash never leaves half a file;
read by synthesis, which never builds or uploads. Holds ids only, never a secret.
A sync holds an exclusive ``flock`` on ``state.json.lock`` beside it, which the kernel
releases when the process dies, so a killed sync never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
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


REBUILD_HINT = "run: perfops images list --rebuild-state"


class CorruptState(PerfOpsError):
    """``state.json`` exists but is not this version's image state."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}; {REBUILD_HINT}")


def load(path: Path) -> SyncState:
    """The state at ``path``; an absent file is an empty state, an unreadable one raises."""
    return _read(path)


def _read(path: Path) -> SyncState:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return SyncState()
    except OSError as error:
        raise PerfOpsError(f"{path}: cannot read image state ({error.strerror})") from None
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise CorruptState(path, f"not valid JSON ({error})") from None
    try:
        return _parse(raw)
    except _Malformed as error:
        raise CorruptState(path, str(error)) from None


class _Malformed(ValueError):
    """A shape problem, worded for the one-line error."""


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{where} must be an object, not {type(value).__name__}")
    return value


def _string(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise _Malformed(f"{where}.{key} must be a string")
    return value


def _parse(raw: Any) -> SyncState:
    if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
        found = raw.get("version") if isinstance(raw, dict) else type(raw).__name__
        raise _Malformed(
            f"not a perfops image state file of version {STATE_VERSION} (found {found!r})"
        )
    images = {}
    for name, value in _object(raw.get("images", {}), "'images'").items():
        where = f"images.{name}"
        entry = _object(value, where)
        regions = {}
        for region, fields in _object(entry.get("regions", {}), f"{where}.regions").items():
            try:
                regions[region] = RegionImage(**_object(fields, f"{where}.regions.{region}"))
            except TypeError as error:
                raise _Malformed(f"{where}.regions.{region}: {error}") from None
        images[name] = ImageRecord(
            ami_name=_string(entry, "ami_name", where),
            home_region=_string(entry, "home_region", where),
            regions=regions,
        )
    return SyncState(images=images)


def rebuild(path: Path, state: SyncState) -> Path | None:
    """Replace the state at ``path`` with ``state``; an unreadable old file is kept beside
    it as ``state.json.corrupt-<UTC time>``, whose path is returned."""
    kept = None
    try:
        _read(path)
    except CorruptState:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        kept = path.with_name(f"{path.name}.corrupt-{stamp}")
        number = 1
        while kept.exists():
            number += 1
            kept = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
        shutil.copy2(path, kept)
    save(path, state)
    return kept


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


class SyncLocked(PerfOpsError):
    """Another process holds the state file's lock."""


def lock_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.lock")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the state file's lock for the block; refuse at once when another sync holds it."""
    target = lock_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise SyncLocked(
                f"{path}: another image sync (pid {holder}) is running; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def is_locked(path: Path) -> bool:
    """True while a sync holds the lock of ``path``."""
    target = lock_path(path)
    if not target.exists():
        return False
    fd = os.open(target, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class Recorder:
    """The state of one sync, saved atomically after every change; thread-safe."""

    def __init__(self, path: Path, state: SyncState) -> None:
        self.path = path
        self._images = dict(state.images)
        self._lock = threading.Lock()

    @property
    def state(self) -> SyncState:
        with self._lock:
            return SyncState(images=dict(self._images))

    def start_image(self, image: str, ami_name: str, home_region: str) -> None:
        """Begin recording ``image``; a new identity drops the old identity's regions."""
        with self._lock:
            old = self._images.get(image)
            regions = old.regions if old is not None and old.ami_name == ami_name else {}
            self._images[image] = ImageRecord(ami_name, home_region, dict(regions))
            self._save()

    def set_region(self, image: str, region: str, **changes: Any) -> None:
        """Update one region of ``image`` (``ami_id``, ``snapshot_id``, ``state``, ...)."""
        with self._lock:
            record = self._images[image]
            entry = attrs.evolve(record.regions.get(region, RegionImage()), **changes)
            self._images[image] = attrs.evolve(record, regions={**record.regions, region: entry})
            self._save()

    def forget(self, removed: dict[str, set[str]]) -> None:
        """Drop regions (image -> regions) whose AMIs were deleted."""
        with self._lock:
            for image, regions in removed.items():
                record = self._images.get(image)
                if record is None:
                    continue
                left = {r: v for r, v in record.regions.items() if r not in regions}
                if left:
                    self._images[image] = attrs.evolve(record, regions=left)
                else:
                    del self._images[image]
            self._save()

    def _save(self) -> None:
        save(self.path, SyncState(images=dict(self._images)))
