"""`perfops clients` and `perfops tunnel` through real ssh to sshd stand-ins on loopback
(see standinkit, sshkit)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sshkit import (
    HAVE_SSH,
    ec2,
    free_port,
    launch,
    running,
    ssh_children,
    stop_cli,
)
from standinkit import Fleet, client_key, cloud, fleet_env, hosts_side
from typer.testing import CliRunner

from perfops_cdk.cli.main import app

pytestmark = pytest.mark.skipif(not HAVE_SSH, reason="needs ssh and sshd (openssh-server)")
__all__ = ["client_key", "cloud", "fleet_env", "hosts_side"]  # fixtures, used by name

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


def _status(*services: dict[str, Any], present: bool = True) -> dict[str, Any]:
    return {"version": 1, "specPresent": present, "specError": None, "services": list(services)}


def _service(state: str, created: int, running: int, error: str | None = None) -> dict[str, Any]:
    return {
        "name": "k6",
        "state": state,
        "autoStart": True,
        "declared": 10,
        "created": created,
        "running": running,
        "lastError": error,
    }


def test_clients_sums_what_each_host_reports(fleet_env: Fleet) -> None:
    """Per deployment and region: declared from tags, created/running from hosts, behind
    counts short and unreachable hosts, and the first error line is shown."""
    a, b, c = (fleet_env.by_label[label] for label in sorted(fleet_env.by_label))
    a.set_status(_status(_service("applied", 10, 10)))
    b.set_status(_status(_service("failed", 4, 3, "error: builder for k6 failed")))
    c.set_status(_status(_service("applied", 10, 10)))
    try:
        [extra] = launch(
            ec2("us-east-1"), uuid=fleet_env.uuid, deployment="web", count=1, containers=10
        )
        fleet_env.route({extra["PublicIpAddress"]: free_port()})
        result = runner.invoke(app, ["clients", "web"])
        # Hosts are numbered by launch time, then id: launched in the same second as
        # the other us-east-1 host, the extra one may be number 0 or 1.
        listed = json.loads(runner.invoke(app, ["hosts", "web", "--json"]).stdout)
        [extra_index] = [
            h["index"] for h in listed["hosts"] if h["instance_id"] == extra["InstanceId"]
        ]
    finally:
        ec2("us-east-1").terminate_instances(InstanceIds=[extra["InstanceId"]])
        for stand_in in (a, b, c):
            stand_in.set_status({})
    assert result.exit_code == 0, result.output
    header, *rows = (line.split("\t") for line in result.stdout.splitlines())
    table = [dict(zip(header, row, strict=True)) for row in rows]
    assert table[0] == {
        "stack": "perf-ops",
        "deployment": "web",
        "region": "eu-west-1",
        "hosts": "2",
        "declared": "20",
        "created": "14",
        "running": "13",
        "behind": "1",
        "unreachable": "0",
        "first_error": "web/eu-west-1/1: k6: error: builder for k6 failed",
    }
    east = table[1]
    assert (east["hosts"], east["declared"], east["created"], east["running"]) == (
        "2",
        "20",
        "10",
        "10",
    )
    assert (east["behind"], east["unreachable"]) == ("1", "1")
    assert east["first_error"].startswith(f"web/us-east-1/{extra_index}: ssh: connect to host")


class Payload:
    """A tiny TCP server on loopback that answers every connection with fixed bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(self.data)

    def close(self) -> None:
        self.server.close()


def _fetch(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.slow
def test_tunnel_forwards_each_host_and_stops_cleanly_on_ctrl_c(fleet_env: Fleet) -> None:
    """Each host's port is reachable on its own 127.0.0.1 port; Ctrl-C: exit 0, no ssh left."""
    payload = Payload(b"netdata says hi")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "perfops_cdk.cli.main",
            "tunnel",
            "web",
            "--port",
            str(payload.port),
        ],
        cwd=fleet_env.root,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls = dict(process.stdout.readline().strip().split("\t") for _ in range(3))
        assert sorted(urls) == sorted(fleet_env.by_label)
        ports = [int(url.rsplit(":", 1)[1].strip("/")) for url in urls.values()]
        assert len(set(ports)) == 3 and all(p > payload.port for p in ports)
        for port in ports:
            assert _fetch(port) == b"netdata says hi"
        children = ssh_children(process.pid)
        assert len(children) == 3
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        payload.close()
        stop_cli(process)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert not [pid for pid in children if running(pid)]


def test_tunnel_to_a_port_in_use_is_refused(fleet_env: Fleet) -> None:
    """--local-port naming a busy port: exit 2 before any ssh starts."""
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["tunnel", "web/eu-west-1/0", "--local-port", str(port)])
    assert result.exit_code == 2
    assert f"127.0.0.1:{port} is in use" in result.stderr
