"""The AWS provider package ``terraform init`` installed for a stack, checked as
Terraform checks it.

Every Terraform command verifies the installed provider against the stack's lock file
(its ``h1:`` hash) before starting it; a provider Terraform attaches to is not
verified. So perfops verifies the package before starting it, with Terraform's own
hash (Go's ``dirhash`` "Hash1" of the unpacked package: the SHA-256 of the lines
``<sha256 of file>  <relative name>``, sorted by name, in base64). Hashing the ~700 MB
binary takes about a second, so a verified package is remembered by its files' paths,
sizes, modification times and inodes, in memory and in a small cache file: a changed
or replaced package (another version, a new init) is hashed again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from pathlib import Path

AWS_PROVIDER = "registry.terraform.io/hashicorp/aws"

_lock = threading.Lock()
_known: dict[str, str] = {}


def installed(stack_dir: Path, cache: Path) -> tuple[Path | None, str]:
    """The provider binary to start for this stack, or None and why not: there must be
    one at the version the stack's lock file selects, matching one of its hashes."""
    try:
        lock = (stack_dir / ".terraform.lock.hcl").read_text()
    except OSError:
        return None, "the stack has no lock file (not initialized)"
    block = re.search(rf'provider "{re.escape(AWS_PROVIDER)}" {{(.*?)\n}}', lock, re.S)
    version = re.search(r'version\s*=\s*"([^"]+)"', block.group(1)) if block else None
    if block is None or version is None:
        return None, f"the lock file selects no {AWS_PROVIDER} version"
    root = stack_dir / ".terraform" / "providers" / AWS_PROVIDER / version.group(1)
    found = [p for p in root.glob("*/terraform-provider-aws*") if os.access(p, os.X_OK)]
    if len(found) != 1:
        return None, f"{len(found)} aws provider binaries are installed at {version.group(1)}"
    hashes = set(re.findall(r'"(h1:[^"]+)"', block.group(1)))
    if package_hash(found[0].parent, cache) not in hashes:
        return None, "the installed aws provider does not match the lock file's hashes"
    return found[0], ""


def package_hash(package: Path, cache: Path) -> str:
    """The ``h1:`` hash of an unpacked provider package, hashed once per version of
    its files."""
    package = package.resolve()
    files = sorted(p for p in package.rglob("*") if p.is_file())
    key = json.dumps(
        [
            [p.relative_to(package).as_posix(), s.st_size, s.st_mtime_ns, s.st_ino]
            for p, s in ((p, p.stat()) for p in files)
        ]
        + [str(package)]
    )
    with _lock:
        if key not in _known:
            _known.update(_read(cache))
        if key not in _known:
            _known[key] = _hash1(package, files)
            _write(cache, key, _known[key])
        return _known[key]


def _hash1(package: Path, files: list[Path]) -> str:
    summary = hashlib.sha256()
    for path in files:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        summary.update(f"{digest.hexdigest()}  {path.relative_to(package).as_posix()}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode()


def _read(cache: Path) -> dict[str, str]:
    try:
        found = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in found.items() if isinstance(v, str)} if isinstance(found, dict) else {}


def _write(cache: Path, key: str, value: str) -> None:
    """Add one entry; written whole to a temporary file and renamed over the cache."""
    entries = {**_read(cache), key: value}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(entries, indent=1))
        temporary.replace(cache)
    except OSError:
        pass  # a cache that cannot be written costs a second next time, nothing more
