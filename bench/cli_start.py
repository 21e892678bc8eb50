"""Benchmark: how long the perfops CLI takes to start for commands that do not
synthesize (issue 10: they must not start the jsii runtime), now and at an earlier
commit, side by side.

The earlier commit is checked out into a scratch git worktree and run with this
project's virtualenv (``PYTHONPATH`` puts it first). Per command: the median wall time
of ``--runs`` runs and whether the process imported ``jsii``. Run:
``.venv/bin/python bench/cli_start.py [--runs 7] [--before 26b6b62]``; the results go to
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SECTION = "## CLI start"
COMMANDS = (["--help"], ["status", "--help"], ["destroy", "--help"], ["images", "--help"])
PROBE = (
    "import runpy, sys; sys.argv = ['perfops', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('perfops_cdk.cli.main', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "finally:\n"
    "    sys.stderr.write('JSII=%s\\n' % ('jsii' in sys.modules))\n"
)


def measure(checkout: Path, argv: list[str], runs: int) -> tuple[float, bool]:
    """Median wall seconds of ``perfops argv`` from ``checkout``; whether jsii loaded."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    walls, jsii = [], False
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", PROBE, *argv],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        walls.append(time.perf_counter() - start)
        jsii = "JSII=True" in done.stderr
    return statistics.median(walls), jsii


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--before", default="26b6b62")
    options = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="perfops-cli-before-") as scratch:
        before = Path(scratch) / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(before), options.before],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        try:
            rows = []
            for argv in COMMANDS:
                old, old_jsii = measure(before, argv, options.runs)
                new, new_jsii = measure(REPO, argv, options.runs)
                rows.append(
                    f"| `perfops {' '.join(argv)}` | {old:.2f} | {new:.2f} | {old / new:.1f}x "
                    f"| {'yes' if old_jsii else 'no'} | {'yes' if new_jsii else 'no'} |"
                )
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(before)], cwd=REPO, check=False
            )
    section = "\n".join(
        [
            SECTION,
            "",
            f"`bench/cli_start.py`: median of {options.runs} runs, 2 cores, load average "
            f"{load:.1f} at the start;",
            f"before = commit {options.before}, after = this tree, same virtualenv.",
            "",
            "| command | before s | after s | ratio | jsii before | jsii after |",
            "| --- | ---: | ---: | ---: | --- | --- |",
            *rows,
        ]
    )
    print(section)
    path = REPO / "docs" / "benchmarks.md"
    text = path.read_text()
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip() + "\n\n" + section + "\n"
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + "\n" + (text[end + 1 :] if end >= 0 else "")
    path.write_text(text)


if __name__ == "__main__":
    main()
