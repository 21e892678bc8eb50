"""A perfops project on disk: where cdktf.json is, its app command, its synth output."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs

from perfops_cdk.app import DEFAULT_OUTDIR, OUTDIR_ENV
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.jsii_env import NODE_WARNING_ENV

CONFIG_FILE = "cdktf.json"
# Directories tools write to, never sources of the app (hidden ones are skipped too).
_NOT_SOURCES = frozenset({"node_modules", "cdktf.out", "__pycache__", "result"})
# What an app's synthesis reads: its code, config, image state, nix expressions.
_SOURCE_SUFFIXES = (".py", ".json", ".nix", ".txt")


@attrs.frozen
class Project:
    root: Path
    app: tuple[str, ...]
    outdir: Path

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """The project whose ``cdktf.json`` is in ``start`` or a parent directory."""
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            config = folder / CONFIG_FILE
            if config.is_file():
                return cls.from_config(config)
        raise PerfOpsError(f"{here}: no {CONFIG_FILE} here or above; run perfops in a project")

    @classmethod
    def from_config(cls, config: Path) -> Project:
        try:
            raw = json.loads(config.read_text())
            app = shlex.split(raw["app"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise PerfOpsError(f"{config}: 'app' must name the command to run ({error})") from None
        if app and Path(app[0]).name.startswith("python") and not Path(app[0]).exists():
            # "python" is whatever interpreter runs perfops, so a venv need not be active.
            app[0] = sys.executable
        return cls(
            root=config.parent,
            app=tuple(app),
            outdir=config.parent / raw.get("output", DEFAULT_OUTDIR),
        )

    def synth(self) -> None:
        """Run the app; its own errors are already one line on stderr."""
        env = {**NODE_WARNING_ENV, **os.environ, OUTDIR_ENV: str(self.outdir)}
        result = subprocess.run(self.app, cwd=self.root, env=env, check=False)
        if result.returncode != 0:
            raise SynthFailed(result.returncode)

    def stale(self) -> bool:
        """True when the app's sources changed since the last synthesis (or there is
        none): any file of the project newer than ``manifest.json``, outside the
        directories tools write to."""
        manifest = self.outdir / "manifest.json"
        try:
            synthesized = manifest.stat().st_mtime
        except OSError:
            return True
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if d not in _NOT_SOURCES and not d.startswith(".")]
            for name in files:
                if name.endswith(_SOURCE_SUFFIXES):
                    try:
                        if os.stat(os.path.join(folder, name)).st_mtime > synthesized:
                            return True
                    except OSError:
                        continue
        return False

    def stacks(self) -> list[str]:
        manifest = self.outdir / "manifest.json"
        try:
            return sorted(json.loads(manifest.read_text())["stacks"])
        except (OSError, ValueError, KeyError) as error:
            raise PerfOpsError(f"{manifest}: no synthesized stacks ({error})") from None

    def stack_dir(self, stack: str) -> Path:
        return self.outdir / "stacks" / stack

    def stack_json(self, stack: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.stack_dir(stack) / "cdk.tf.json").read_text())
        return data


class SynthFailed(PerfOpsError):
    """The app exited non-zero; it printed its own one-line error."""

    def __init__(self, code: int) -> None:
        super().__init__("")
        self.exit_code = code
