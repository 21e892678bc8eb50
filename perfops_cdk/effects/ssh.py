"""The one seam to the ``ssh`` client: every ssh argv is built here, every ssh runs here.

``PERFOPS_SSH_CONFIG`` names an extra ssh config file passed with ``-F`` (so it
replaces ``~/.ssh/config`` and ``/etc/ssh/ssh_config`` for perfops' own ssh calls). It
is the test seam: its ``Host <public IP>`` entries send connections to stand-in sshd
processes on loopback ports. Unset, ssh reads its usual configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, NoReturn

import attrs

from perfops_cdk.errors import EffectError, PerfOpsError

SSH_CONFIG_ENV = "PERFOPS_SSH_CONFIG"
CONNECT_TIMEOUT_S = 10
# Printed by ssh itself (LocalCommand) once its port forwards listen.
TUNNEL_READY = "perfops-tunnel-ready"
# ssh's own failures (connection, authentication, host key) exit with 255.
SSH_FAILED = 255
_CHUNK = 65536

# (label, "stdout" | "stderr", one line ending in b"\n")
LineSink = Callable[[str, str, bytes], None]


@attrs.frozen
class Destination:
    """One host as ssh sees it: its label for output, address and ``-o`` options."""

    label: str
    address: str
    options: tuple[tuple[str, str], ...]


@attrs.frozen
class Outcome:
    """How one host's command ended: exit code, stdout when captured, last stderr line."""

    label: str
    exit_code: int
    stdout: bytes = b""
    last_error: str = ""


def ssh_binary() -> str:
    binary = shutil.which("ssh")
    if binary is None:
        raise EffectError("ssh: not found on PATH; install an OpenSSH client")
    return binary


def _argv(destination: Destination, *, batch: bool, extra: Sequence[str] = ()) -> list[str]:
    argv = [ssh_binary()]
    extra_config = os.environ.get(SSH_CONFIG_ENV, "").strip()
    if extra_config:
        argv += ["-F", extra_config]
    for key, value in destination.options:
        argv += ["-o", f"{key}={value}"]
    if batch:
        # Never prompt (a prompt would hang the fan-out); fail fast; first contact
        # learns keys quietly, a changed key is still an error ssh prints.
        argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]
        argv += ["-o", "LogLevel=ERROR"]
    return [*argv, *extra]


def command_argv(destination: Destination, command: str) -> list[str]:
    """``ssh -o BatchMode=yes ... -T -- ADDRESS COMMAND``: one non-interactive run."""
    return _argv(destination, batch=True, extra=["-T", "--", destination.address, command])


def interactive_argv(destination: Destination) -> list[str]:
    return _argv(destination, batch=False, extra=["--", destination.address])


def tunnel_argv(destination: Destination, local_port: int, remote_port: int) -> list[str]:
    """Forward 127.0.0.1:local_port (only loopback) to the host's 127.0.0.1:remote_port."""
    extra = [
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "ServerAliveInterval=30",
        "-o",
        "PermitLocalCommand=yes",
        "-o",
        f"LocalCommand=echo {TUNNEL_READY}",
        "-L",
        f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}",
        "--",
        destination.address,
    ]
    return _argv(destination, batch=True, extra=extra)


def exec_interactive(destination: Destination) -> NoReturn:
    """Replace this process with an interactive ssh session (its exit code is ssh's)."""
    argv = interactive_argv(destination)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def find_identity(key_name: str | None, home: Path | None = None) -> Path | None:
    """``~/.ssh/<KeyName>`` or ``~/.ssh/<KeyName>.pem``, whichever exists first."""
    if not key_name:
        return None
    folder = (home or Path.home()) / ".ssh"
    for candidate in (folder / key_name, folder / f"{key_name}.pem"):
        if candidate.is_file():
            return candidate
    return None


def agent_available() -> bool:
    """Whether an ssh agent is reachable (``SSH_AUTH_SOCK`` names a socket)."""
    sock = os.environ.get("SSH_AUTH_SOCK", "")
    return bool(sock) and Path(sock).is_socket()


def run_all(
    jobs: Sequence[tuple[Destination, str]],
    *,
    parallel: int,
    on_line: LineSink | None = None,
    capture: bool = False,
) -> list[Outcome]:
    """Run each job's command on its host, at most ``parallel`` at once, in job order.

    Each output line goes to ``on_line`` as it arrives; with ``capture`` stdout is
    kept in the outcome instead. Interrupted (Ctrl-C), every ssh still running is
    killed and waited for before ``KeyboardInterrupt`` propagates.
    """
    if parallel < 1:
        raise PerfOpsError(f"--parallel: {parallel} is not allowed; must be at least 1")
    ssh_binary()
    started: list[asyncio.subprocess.Process] = []
    try:
        return asyncio.run(_run_all(jobs, parallel, on_line, capture, started))
    finally:
        # A second Ctrl-C stops the loop before the tasks' own clean-up ran: even
        # then no ssh outlives perfops.
        for process in started:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)


def _raise_first(results: Sequence[object]) -> None:
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _run_all(
    jobs: Sequence[tuple[Destination, str]],
    parallel: int,
    on_line: LineSink | None,
    capture: bool,
    started: list[asyncio.subprocess.Process],
) -> list[Outcome]:
    gate = asyncio.Semaphore(parallel)

    async def one(destination: Destination, command: str) -> Outcome:
        async with gate:
            return await _run_one(destination, command, on_line, capture, started)

    # return_exceptions: a cancelled gather ends only once every job has cleaned up.
    results = await asyncio.gather(*(one(d, c) for d, c in jobs), return_exceptions=True)
    _raise_first(results)
    return [r for r in results if isinstance(r, Outcome)]


async def _run_one(
    destination: Destination,
    command: str,
    on_line: LineSink | None,
    capture: bool,
    started: list[asyncio.subprocess.Process],
) -> Outcome:
    argv = command_argv(destination, command)
    # Its own process group: a terminal's Ctrl-C reaches perfops alone, which then
    # stops every ssh itself rather than leaving some behind.
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        process_group=0,
    )
    started.append(process)
    assert process.stdout is not None and process.stderr is not None
    kept = bytearray()
    errors: list[bytes] = []
    try:
        pumped = await asyncio.gather(
            _pump(process.stdout, destination.label, "stdout", on_line, kept if capture else None),
            _pump(process.stderr, destination.label, "stderr", on_line, None, errors),
            return_exceptions=True,
        )
        code = await process.wait()
    except asyncio.CancelledError:
        # Both pumps have ended here (return_exceptions), so reading to the end is
        # ours: the pipes close while the loop still runs, then the process is reaped.
        if process.returncode is None:
            process.kill()
        await process.communicate()
        raise
    _raise_first(pumped)
    last = next((e for e in reversed(errors) if e.strip()), b"")
    return Outcome(
        label=destination.label,
        exit_code=code,
        stdout=bytes(kept),
        last_error=last.decode(errors="replace").strip(),
    )


async def _pump(
    stream: asyncio.StreamReader,
    label: str,
    name: str,
    on_line: LineSink | None,
    keep: bytearray | None,
    lines: list[bytes] | None = None,
) -> None:
    """Split a stream into lines of any length; pass them on, keep them, or both."""
    pending = b""
    while chunk := await stream.read(_CHUNK):
        if keep is not None:
            keep += chunk
            continue
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            _emit(label, name, line + b"\n", on_line, lines)
    if pending:
        _emit(label, name, pending + b"\n", on_line, lines)


def _emit(
    label: str, name: str, line: bytes, on_line: LineSink | None, lines: list[bytes] | None
) -> None:
    if lines is not None:
        lines.append(line)
        del lines[:-20]
    if on_line is not None:
        on_line(label, name, line)


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be listened on (as ssh binds it: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ephemeral_port() -> int:
    """A port the kernel considers free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@attrs.define
class Tunnel:
    """A running ``ssh -N -L`` for one host; ``error`` is set when it did not come up."""

    label: str
    local_port: int
    remote_port: int
    process: subprocess.Popen[bytes]
    error: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}/"


def start_tunnel(
    destination: Destination, local_port: int, remote_port: int, on_line: LineSink | None
) -> Tunnel:
    """Start one forward and wait until ssh says its listener is up, or has exited."""
    process = subprocess.Popen(
        tunnel_argv(destination, local_port, remote_port),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
    )
    assert process.stdout is not None and process.stderr is not None
    errors: list[bytes] = []
    # ssh must always be able to write its stderr, during and after start-up.
    reader = threading.Thread(
        target=_drain, args=(process.stderr, destination.label, on_line, errors), daemon=True
    )
    reader.start()
    tunnel = Tunnel(destination.label, local_port, remote_port, process)
    ready = process.stdout.readline().decode(errors="replace").strip()
    if ready != TUNNEL_READY:
        process.wait()
        reader.join(timeout=5)
        last = next((e for e in reversed(errors) if e.strip()), b"ssh exited")
        tunnel.error = last.decode(errors="replace").strip()
    return tunnel


def _drain(stream: IO[bytes], label: str, on_line: LineSink | None, lines: list[bytes]) -> None:
    for line in stream:
        _emit(label, "stderr", line, on_line, lines)


def stop_tunnels(tunnels: Sequence[Tunnel]) -> None:
    """Terminate every tunnel's ssh and wait for each, killing any that lingers."""
    for tunnel in tunnels:
        if tunnel.process.poll() is None:
            tunnel.process.terminate()
    for tunnel in tunnels:
        try:
            tunnel.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            tunnel.process.kill()
            tunnel.process.wait()
