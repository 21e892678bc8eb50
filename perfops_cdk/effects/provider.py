"""One AWS provider process per Terraform run, instead of one per step of the run.
Opt-in for now (``PERFOPS_SHARED_PROVIDER=1``; OPT_IN_ENV says why).

Terraform starts the provider anew for every graph walk of a run: `apply -auto-approve`
starts it four times (schema, validate, plan, apply), a plan three times, the apply of
a saved plan twice, and every start costs the provider about a CPU-second to build its
schemas and Terraform a TLS handshake with it. Terraform can attach to a provider that
is already running instead (``TF_REATTACH_PROVIDERS``, the mechanism providers' own
acceptance tests use). So perfops starts the binary Terraform installed for the stack,
once it matches the stack's lock file as Terraform would check it (effects/
provider_package.py; ``-debug`` makes it serve on a unix socket and print its address),
hands the address to that one Terraform run, and stops it afterwards: one start per run. Measured
numbers: docs/design.md, "One provider process per Terraform run".

One process serves one run only, and only a stack with a single AWS provider
configuration (every region stack perfops synthesizes): configurations of one process
overwrite each other, so a stack with aliases or modules keeps Terraform's own starts.
So does a custom CA bundle against AWS: the provider (5.x) fails to configure a second
time in a process with one ("unable to add custom RootCAs HTTPClient"), and every run
configures twice (plan, then apply). A rehearsal drops ``AWS_CA_BUNDLE`` from the
provider's environment instead: the emulator's endpoint is plain HTTP on loopback.

The provider's lifetime is tied to perfops through a pipe: a small ``sh`` watcher stops
the provider when the pipe closes, which also happens when perfops is killed.
The socket lives in a private (0700) temporary directory. When anything here does not
go as planned, the run falls back to Terraform's own starts and the stack's log says why.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from perfops_cdk.effects import provider_package

AWS_PROVIDER = provider_package.AWS_PROVIDER
REATTACH_ENV = "TF_REATTACH_PROVIDERS"
# The provider in debug mode logs to its stderr at trace level unless told otherwise
# (megabytes per run); its warnings and errors go to the stack's log.
LOG_LEVELS = (
    "TF_LOG",
    "TF_LOG_PROVIDER",
    "TF_LOG_SDK",
    "TF_LOG_SDK_PROTO",
    "TF_LOG_SDK_MUX",
    "TF_LOG_SDK_FRAMEWORK",
    "TF_LOG_PROVIDER_AWS",
    "TF_LOG_PROVIDER_AWS_AWS_BASE",
)
# The provider's live heap stays near 50 MB through a run; at Terraform's GOGC its
# heap grows to ~290 MB before a collection. GOGC=400 (few collections) under a soft
# limit of 200 MiB: 360 instead of 470 MB resident for about +0.3 CPU-s per run
# (docs/benchmarks.md, "Provider memory").
GO_MEMORY = {"GOGC": "400", "GOMEMLIMIT": "200MiB"}
# Opt-in for now: in the test suite's runs the emulator lost the answer to a create or
# delete about once per run with it (the provider sends the request again and fails on
# the duplicate; operations/recovery.py recovers creates), not seen without it.
OPT_IN_ENV = "PERFOPS_SHARED_PROVIDER"
ATTACHED_TERRAFORM_GOGC = "200"
START_BUDGET_S = 60.0
STOP_BUDGET_S = 30.0
ADDRESS = re.compile(r"TF_REATTACH_PROVIDERS='(\{.*\})'")
# A watcher beside the provider stops it when perfops closes the watcher's stdin, or
# dies and the pipe closes, then removes the private directory of its socket.
WATCH = 'read -r line; kill "$1" 2>/dev/null; rm -rf "$2"'


def unshared_reason(stack: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """Why a run of this synthesized stack must let Terraform start its own providers
    (None: one process can serve the whole run). ``env`` is the provider's environment."""
    if stack.get("module"):
        return "the stack calls modules, whose provider configurations may differ"
    blocks = (stack.get("provider") or {}).get("aws") or []
    blocks = [blocks] if isinstance(blocks, dict) else list(blocks)
    if len(blocks) > 1 or any(isinstance(b, dict) and b.get("alias") for b in blocks):
        return "the stack configures the aws provider more than once"
    if any(isinstance(b, dict) and b.get("custom_ca_bundle") for b in blocks):
        return "the aws provider cannot be configured twice in a process with a CA bundle"
    if env.get("AWS_CA_BUNDLE") or _profile_ca_bundle(env):
        return "the aws provider cannot be configured twice in a process with a CA bundle"
    return None


def _profile_ca_bundle(env: Mapping[str, str]) -> str | None:
    """The ``ca_bundle`` of the AWS config file's profile in use, if it sets one."""
    path = Path(env.get("AWS_CONFIG_FILE") or "~/.aws/config").expanduser()
    profile = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    parser = configparser.RawConfigParser()
    try:
        parser.read(path)
    except (OSError, configparser.Error):
        return None
    section = profile if profile == "default" else f"profile {profile}"
    return parser.get(section, "ca_bundle", fallback=None) or None


def provider_env(env: Mapping[str, str], rehearsal: str | None) -> dict[str, str]:
    """The provider's environment: the one Terraform would give it, quieter; in a
    rehearsal against a plain-HTTP emulator, without a CA bundle."""
    result = dict(env)
    level = env.get("TF_LOG_PROVIDER") or env.get("TF_LOG") or "WARN"
    for name in LOG_LEVELS:
        result.setdefault(name, level)
    for name, value in GO_MEMORY.items():
        if name not in os.environ:  # the user's choice wins
            result[name] = value
    if rehearsal and rehearsal.startswith("http://"):
        result.pop("AWS_CA_BUNDLE", None)
    return result


@contextmanager
def attached(
    stack_dir: Path,
    env: Mapping[str, str],
    log: Path,
    *,
    rehearsal: str | None,
    hashes: Path,
) -> Iterator[dict[str, str]]:
    """Run the body with a provider process of its own for this stack: yields the
    variables that attach Terraform to it, or ``{}`` (Terraform starts its own; the
    log says why) when the stack or the environment does not allow it. ``hashes``
    caches the provider packages verified against lock files."""
    if os.environ.get(OPT_IN_ENV) != "1":
        yield {}
        return
    penv = provider_env(env, rehearsal)
    try:
        stack = json.loads((stack_dir / "cdk.tf.json").read_text())
    except (OSError, ValueError):
        stack = None
    reason = "the stack's JSON is unreadable" if stack is None else unshared_reason(stack, penv)
    found = None
    if reason is None:
        found, reason = provider_package.installed(stack_dir, hashes)
    if found is None:
        _note(log, f"Terraform starts its own aws providers: {reason}")
        yield {}
        return
    with _running(found, stack_dir, penv, log) as address:
        # Terraform itself lives with its schema decoded for the run: a smaller heap.
        tuned = {} if "GOGC" in os.environ else {"GOGC": ATTACHED_TERRAFORM_GOGC}
        yield {REATTACH_ENV: address, **tuned} if address else {}


@contextmanager
def _running(found: Path, stack_dir: Path, env: dict[str, str], log: Path) -> Iterator[str | None]:
    private = Path(tempfile.mkdtemp(prefix="perfops-provider-"))
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as errors, (private / "stdout").open("w") as out:
        # Sessions of their own: a Ctrl-C reaches Terraform, which stops gracefully
        # while its provider still serves.
        process = subprocess.Popen(
            [str(found), "-debug"],
            cwd=stack_dir,
            env={**env, "TMPDIR": str(private)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=errors,
            start_new_session=True,
        )
        watcher = subprocess.Popen(
            ["/bin/sh", "-c", WATCH, "perfops-provider-watch", str(process.pid), str(private)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        address = _address(private / "stdout", process)
        if address is None:
            _note(log, "Terraform starts its own aws providers: the provider printed no address")
        yield address
    finally:
        _stop(process, watcher)
        shutil.rmtree(private, ignore_errors=True)


def _address(out: Path, process: subprocess.Popen[bytes]) -> str | None:
    """The reattach address the provider prints once it serves, None if it exits or
    the start budget runs out first."""
    deadline = time.monotonic() + START_BUDGET_S
    while time.monotonic() < deadline:
        try:
            found = ADDRESS.search(out.read_text())
        except OSError:
            found = None
        if found is not None:
            try:
                if AWS_PROVIDER in json.loads(found.group(1)):
                    return found.group(1)
            except ValueError:
                pass
            return None
        if process.poll() is not None:
            return None
        time.sleep(0.02)
    return None


def _stop(process: subprocess.Popen[bytes], watcher: subprocess.Popen[bytes]) -> None:
    """Stop the provider through its watcher (closing the pipe, as perfops' exit
    would); a provider that already exited is not signalled (its pid may be reused)."""
    if process.poll() is None and watcher.stdin is not None:
        watcher.stdin.close()
        try:
            process.wait(timeout=STOP_BUDGET_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    else:
        watcher.kill()
    watcher.wait()


def _note(log: Path, line: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(f"perfops: {line}\n")
