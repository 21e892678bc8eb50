"""Stand-in fleet hosts for tests and benchmarks: real sshd processes on loopback ports,
and hosts in the emulator whose public IPs an ssh config (PERFOPS_SSH_CONFIG) sends to
them.

Each stand-in runs ``sshd -D -e -f CONFIG`` with its own host key, the test client
key as its only authorized key and ``UsePAM no``. Its sessions get ``PATH`` with a
fake ``perfops-spawn-containers`` first (``SetEnv``), which prints the JSON the test
gave, ``HOME`` of its own (so the test machine's dotfiles stay out of each session) and
``PERFOPS_STANDIN=<name>`` plus any extra variables.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from perfops_cdk.effects import aws
from perfops_cdk.effects.emulator import Emulator

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
HAVE_SSH = Path(SSHD).is_file() and shutil.which("ssh") is not None
KEY_NAME = "perfops-test"
READY_BUDGET_S = 15.0


def keygen(path: Path) -> Path:
    """An unencrypted ed25519 key pair at ``path`` and ``path.pub``."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
    )
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class StandIn:
    """One sshd standing in for a fleet host."""

    def __init__(
        self,
        root: Path,
        name: str,
        client_key: Path,
        *,
        status: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root / name
        self.name = name
        self.bin = self.root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.status_file = self.root / "status.json"
        self.set_status(status or {})
        spawner = self.bin / "perfops-spawn-containers"
        spawner.write_text(
            "#!/bin/sh\n"
            "# Stand-in spawner: --status prints what the test set.\n"
            f'[ "$1" = --status ] && exec cat {self.status_file}\n'
            "exit 64\n"
        )
        spawner.chmod(0o755)
        self.host_key = keygen(self.root / "host_key")
        authorized = self.root / "authorized_keys"
        shutil.copy(client_key.with_name(client_key.name + ".pub"), authorized)
        # A home of its own: the shell of a session reads that home's (empty) dotfiles,
        # not those of the machine running the tests.
        home = self.root / "home"
        home.mkdir(exist_ok=True)
        self.env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(home),
            "PERFOPS_STANDIN": name,
            **(env or {}),
        }
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def set_status(self, status: Mapping[str, Any]) -> None:
        self.status_file.write_text(json.dumps(status))

    def _config(self) -> Path:
        config = self.root / "sshd_config"
        set_env = " ".join(f'"{k}={v}"' for k, v in self.env.items())
        config.write_text(
            f"ListenAddress 127.0.0.1:{self.port}\n"
            f"HostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}\n"
            "StrictModes no\nUsePAM no\nPidFile none\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "AllowTcpForwarding local\nMaxStartups 100:30:200\n"
            f"SetEnv {set_env}\n"
        )
        return config

    def start(self) -> StandIn:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            self.port = free_port()
            log = (self.root / "sshd.log").open("wb")
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self._config())],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"sshd stand-in {self.name} did not start: {self.log()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_BUDGET_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    if probe.recv(8).startswith(b"SSH-"):
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    def log(self) -> str:
        path = self.root / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def new_host_key(self) -> None:
        """Restart with a new host key, as a rebuilt (or impostor) host would have."""
        self.stop()
        self.host_key = keygen(self.root / "host_key")
        port = self.port
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self._config())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.port = port
        if not self._wait_ready():
            raise RuntimeError(f"sshd stand-in {self.name} did not restart")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def stand_ins(
    root: Path, client_key: Path, names: Sequence[str], **options: Any
) -> Iterator[list[StandIn]]:
    """Start one stand-in per name; stop them all on exit."""
    started: list[StandIn] = []
    try:
        for name in names:
            started.append(StandIn(root, name, client_key, **options).start())
        yield started
    finally:
        for stand_in in started:
            stand_in.stop()


def write_ssh_config(path: Path, routes: Iterable[tuple[str, int]]) -> Path:
    """``Host <public IP>`` -> 127.0.0.1:<port> for each route: the PERFOPS_SSH_CONFIG file."""
    path.write_text(
        "".join(f"Host {ip}\n  HostName 127.0.0.1\n  Port {port}\n\n" for ip, port in routes)
    )
    return path


def ec2(region: str) -> Any:
    """An EC2 client of the current endpoint (aws.client makes it once and reuses it)."""
    return aws.client("ec2", region)


@contextmanager
def warm_emulator(server: Emulator) -> Iterator[Emulator]:
    """The session's emulator, exported, *not* reset: tests isolate themselves by uuid,
    so moto keeps its regions built (building one costs about a second)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in server.environment().items():
            patch.setenv(key, value)
        yield server


def launch(
    ec2: Any,
    *,
    uuid: str,
    deployment: str,
    count: int,
    containers: int = 0,
    stack: str | None = None,
    key_name: str | None = KEY_NAME,
    public_ip: bool = True,
    managed_by: str = "perfops_cdk",
) -> list[dict[str, Any]]:
    """Run ``count`` instances tagged as perfops_cdk tags its hosts; their descriptions."""
    tags = {
        "perf-ops": uuid,
        "deployment": deployment,
        "image": "node-v1",
        "managed-by": managed_by,
        "Name": f"perf-ops-{uuid}-{deployment}",
        "perf-ops-containers": str(containers),
    }
    if stack is not None:
        tags["perf-ops:stack"] = stack
    request: dict[str, Any] = {
        "ImageId": "ami-03cf127a",
        "MinCount": count,
        "MaxCount": count,
        "InstanceType": "t3.micro",
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    }
    if key_name is not None:
        request["KeyName"] = key_name
    if not public_ip:
        subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        request["NetworkInterfaces"] = [
            {"DeviceIndex": 0, "SubnetId": subnet, "AssociatePublicIpAddress": False}
        ]
    instances: list[dict[str, Any]] = ec2.run_instances(**request)["Instances"]
    ids = [i["InstanceId"] for i in instances]
    described = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    by_id = {i["InstanceId"]: i for r in described for i in r["Instances"]}
    return [by_id[i] for i in ids]


def write_project(
    root: Path, *, uuid: str, regions: Sequence[str], stacks: Sequence[str] = ("perf-ops",)
) -> Path:
    """A project whose cdktf.out holds, for each stack of deployer ``uuid``, a region
    stack per region, as synthesis writes them (with perfops' note).

    Its app fails if run: reading cdktf.out must not synthesize.
    """
    outdir = root / "cdktf.out"
    root.mkdir(parents=True, exist_ok=True)
    (root / "cdktf.json").write_text(json.dumps({"app": "false"}))
    manifest: dict[str, Any] = {"stacks": {}, "version": "0.21.0"}

    def write(name: str, stack_json: dict[str, Any]) -> None:
        folder = outdir / "stacks" / name
        folder.mkdir(parents=True, exist_ok=True)
        manifest["stacks"][name] = {"synthesizedStackPath": f"stacks/{name}/cdk.tf.json"}
        (folder / "cdk.tf.json").write_text(json.dumps(stack_json))

    for stack in stacks:
        write(stack, {"//": {"perfops": {"kind": "app", "uuid": uuid, "state_dir": "../../.."}}})
        for region in regions:
            note = {
                "kind": "region",
                "app_stack": stack,
                "region": region,
                "uuid": uuid,
                "state_dir": "../../..",
                "deployments": {},
            }
            write(
                f"{stack}-{region}",
                {"//": {"perfops": note}, "provider": {"aws": [{"region": region}]}},
            )
    (outdir / "manifest.json").write_text(json.dumps(manifest))
    return root


def process_children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


def ssh_children(pid: int) -> list[int]:
    """Direct children of ``pid`` that are ssh clients (perfops also has jsii's node)."""
    found = []
    for child in process_children(pid):
        try:
            if Path(f"/proc/{child}/comm").read_text().strip() == "ssh":
                found.append(child)
        except OSError:
            continue
    return found


def stop_cli(process: subprocess.Popen[str]) -> None:
    """End a perfops process a test started, however the test went: Ctrl-C first (so it
    stops its own ssh), then SIGKILL, then any ssh child it left behind."""
    if process.poll() is not None:
        return
    children = ssh_children(process.pid)
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
    for pid in children:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def loadavg() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
