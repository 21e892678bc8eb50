"""The one seam for nix: every nix program runs through ``run``.

An image's identity is its nix output path, so ``instantiate`` evaluates that path
without building anything; ``build`` realises it; ``read_image_info`` parses the
``nix-support/image-info.json`` that NixOS image builders (and ``nix/test-image``) write.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from perfops_cdk.errors import EffectError

__all__ = [
    "DiskInfo",
    "ImageInfo",
    "NixResult",
    "build",
    "instantiate",
    "read_image_info",
    "run",
]

# Enough of nix's stderr to show the failing builder line without flooding the one-line error.
STDERR_TAIL_LINES = 3


@attrs.frozen
class NixResult:
    """What a nix program did: its argv, exit code and captured output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run(argv: Sequence[str], *, timeout: float | None = None) -> NixResult:
    """Run one nix program and capture its output; never raises on a non-zero exit."""
    try:
        completed = subprocess.run(
            list(argv), capture_output=True, text=True, check=False, timeout=timeout
        )
    except FileNotFoundError as exc:
        raise EffectError(
            f"{argv[0]}: not found on PATH; install nix (Debian: apt-get install -y nix-bin)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise EffectError(f"{' '.join(argv)}: no result after {timeout} s") from exc
    return NixResult(tuple(argv), completed.returncode, completed.stdout, completed.stderr)


def _stderr_tail(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return " | ".join(lines[-STDERR_TAIL_LINES:]) or "(no output)"


def _checked(argv: Sequence[str], what: str) -> str:
    result = run(argv)
    if result.returncode != 0:
        tail = _stderr_tail(result.stderr)
        raise EffectError(f"{what} failed (exit {result.returncode}): {tail}")
    return result.stdout


def _selection(expr_file: Path, attr: str | None, args: Mapping[str, str]) -> list[str]:
    argv = [str(expr_file)]
    if attr:
        argv += ["-A", attr]
    for key, value in sorted(args.items()):
        argv += ["--argstr", key, value]
    return argv


def _describe(expr_file: Path, attr: str | None) -> str:
    return f"{expr_file}" + (f" -A {attr}" if attr else "")


def instantiate(
    expr_file: Path, attr: str | None = None, *, args: Mapping[str, str] | None = None
) -> Path:
    """The output path ``attr`` of ``expr_file`` would build to, without building it.

    ``args`` are passed as ``--argstr``; by default none are passed.
    """
    selection = _selection(expr_file, attr, args or {})
    where = _describe(expr_file, attr)
    drv_lines = _checked(["nix-instantiate", *selection], f"nix-instantiate {where}").split()
    if len(drv_lines) != 1:
        raise EffectError(f"nix-instantiate {where}: expected one derivation, got {drv_lines!r}")
    outputs = _checked(
        ["nix-store", "--query", "--outputs", drv_lines[0]], f"nix-store --query {drv_lines[0]}"
    ).split()
    if not outputs:
        raise EffectError(f"nix-store --query --outputs {drv_lines[0]}: no output path")
    # The first output is "out", the one nix-build prints and image builders write into.
    return Path(outputs[0])


def build(
    expr_file: Path,
    attr: str | None = None,
    *,
    args: Mapping[str, str] | None = None,
    out_link: Path | None = None,
) -> Path:
    """Build ``attr`` of ``expr_file`` and return its output path.

    With ``out_link`` the result is kept alive by a GC root there; by default no link is
    made (``--no-out-link``) and a garbage collection may remove the output later.
    """
    selection = _selection(expr_file, attr, args or {})
    link = ["--out-link", str(out_link)] if out_link else ["--no-out-link"]
    stdout = _checked(["nix-build", *selection, *link], f"nix-build {_describe(expr_file, attr)}")
    paths = stdout.split()
    if not paths:
        raise EffectError(f"nix-build {_describe(expr_file, attr)}: printed no output path")
    return Path(paths[0])


@attrs.frozen
class DiskInfo:
    """One disk of an image: its file and the size of the volume it becomes."""

    file: Path
    logical_bytes: int


@attrs.frozen
class ImageInfo:
    """The contents of ``nix-support/image-info.json``.

    ``file`` and ``logical_bytes`` are the root disk's; ``disks`` lists every disk by
    role (``root``, and ``boot`` for NixOS ZFS images).
    """

    label: str
    system: str
    logical_bytes: int
    file: Path
    boot_mode: str
    disks: Mapping[str, DiskInfo] = attrs.field(hash=False)

    @property
    def format(self) -> str:
        """``vhd`` for VHD images (import-snapshot path), ``raw`` otherwise."""
        return "vhd" if self.file.suffix.lower() == ".vhd" else "raw"


def _logical_bytes(value: Any, where: str) -> int:
    # NixOS writes this number as a JSON string (jq --arg), newer tools as a number.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise EffectError(f"{where}: logical_bytes {value!r} is not a byte count")
    try:
        number = int(value)
    except ValueError as exc:
        raise EffectError(f"{where}: logical_bytes {value!r} is not a byte count") from exc
    if number <= 0:
        raise EffectError(f"{where}: logical_bytes {value!r} must be positive")
    return number


def _disk(raw: Any, out_path: Path, where: str) -> DiskInfo:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("file"), str):
        raise EffectError(f"{where}: a disk needs a 'file' string, got {raw!r}")
    file = out_path / raw["file"]  # absolute paths (the NixOS way) replace out_path
    if not file.is_file():
        raise EffectError(f"{where}: disk image {file} does not exist or is not a file")
    return DiskInfo(file=file, logical_bytes=_logical_bytes(raw.get("logical_bytes"), where))


def read_image_info(out_path: Path) -> ImageInfo:
    """Parse ``<out_path>/nix-support/image-info.json``; raise one line when unusable."""
    path = out_path / "nix-support" / "image-info.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise EffectError(f"{path}: missing; the image expression must write it") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise EffectError(f"{path}: unreadable: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise EffectError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise EffectError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    for key in ("label", "system"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise EffectError(f"{path}: '{key}' must be a non-empty string, got {raw.get(key)!r}")

    raw_disks = raw.get("disks")
    if raw_disks is None and "file" in raw:
        # Older NixOS images list only the top-level file and size.
        raw_disks = {"root": {"file": raw["file"], "logical_bytes": raw.get("logical_bytes")}}
    if not isinstance(raw_disks, dict) or "root" not in raw_disks:
        raise EffectError(f"{path}: needs 'disks.root' (or top-level 'file'), got {raw_disks!r}")
    disks = {
        name: _disk(disk, out_path, f"{path}: disks.{name}") for name, disk in raw_disks.items()
    }

    boot_mode = raw.get("boot_mode", "legacy-bios")
    if boot_mode not in ("legacy-bios", "uefi", "uefi-preferred"):
        raise EffectError(
            f"{path}: boot_mode {boot_mode!r} is not one of legacy-bios, uefi, uefi-preferred"
        )
    root = disks["root"]
    return ImageInfo(
        label=raw["label"],
        system=raw["system"],
        logical_bytes=root.logical_bytes,
        file=root.file,
        boot_mode=boot_mode,
        disks=disks,
    )
