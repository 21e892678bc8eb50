"""`perfops ssh` and `ssh-config` through a real ssh client to real sshd stand-ins on
loopback, for hosts that live in the emulator (see standinkit, sshkit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sshkit import (
    HAVE_SSH,
    KEY_NAME,
    ec2,
    free_port,
    launch,
    running,
    ssh_children,
    stop_cli,
)
from standinkit import LABELS, PROBE, Fleet, client_key, cloud, fleet_env, hosts_side
from typer.testing import CliRunner

from perfops_cdk.cli.main import app

pytestmark = pytest.mark.skipif(not HAVE_SSH, reason="needs ssh and sshd (openssh-server)")
__all__ = ["client_key", "cloud", "fleet_env", "hosts_side"]  # fixtures, used by name

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


def test_fanout_runs_everywhere_prefixes_lines_and_sums_up(fleet_env: Fleet) -> None:
    """Every host runs the command; lines carry the host; one failure makes exit 1."""
    result = runner.invoke(app, ["ssh", "web", "--", PROBE])
    assert result.exit_code == 1, result.output
    assert sorted(result.stdout.splitlines()) == [
        "web/eu-west-1/0: hello from a",
        "web/eu-west-1/1: hello from b",
        "web/us-east-1/0: hello from c",
    ]
    stderr = result.stderr.splitlines()
    assert "web/eu-west-1/0: to stderr" in stderr
    assert "ok 2 of 3 host(s); failed 1:" in stderr
    assert "  web/us-east-1/0: exit 3: to stderr" in stderr


def test_fanout_of_healthy_hosts_exits_0_one_at_a_time_too(fleet_env: Fleet) -> None:
    """--parallel 1 runs the same command host after host; all succeed, exit 0."""
    result = runner.invoke(app, ["ssh", "web/eu-west-1", "--parallel", "1", "--", PROBE])
    assert result.exit_code == 0, result.output
    assert "ok 2 of 2 host(s)" in result.stderr


def test_first_contact_learns_host_keys_under_instance_ids(fleet_env: Fleet) -> None:
    """The project's known_hosts gets each stand-in's key, filed under its instance id."""
    assert runner.invoke(app, ["ssh", "web/eu-west-1", "--", "true"]).exit_code == 0
    learned = {
        line.split()[0]: line.split()[2]
        for line in fleet_env.known_hosts().read_text().splitlines()
    }
    for label in ("web/eu-west-1/0", "web/eu-west-1/1"):
        key = fleet_env.by_label[label].host_key.with_suffix(".pub").read_text().split()[1]
        assert learned[fleet_env.ids[label]] == key
    assert len(learned) == 2


def test_changed_host_key_is_refused(fleet_env: Fleet) -> None:
    """After a host's key changes, ssh refuses it (exit 255) and the summary says why."""
    assert runner.invoke(app, ["ssh", "web/eu-west-1/1", "--", "true"]).exit_code == 0
    before = fleet_env.known_hosts().read_text()
    fleet_env.by_label["web/eu-west-1/1"].new_host_key()
    result = runner.invoke(app, ["ssh", "web/eu-west-1/1", "--", "echo should not run"])
    assert result.exit_code == 1
    assert "should not run" not in result.stdout
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr
    assert "exit 255: Host key verification failed." in result.stderr
    assert "host key changed" in result.stderr
    assert fleet_env.known_hosts().read_text() == before


def test_unreachable_host_is_a_failure_not_a_hang(fleet_env: Fleet) -> None:
    """A host whose address refuses connections ends with exit 255 in the summary."""
    fleet_env.routes.write_text(
        fleet_env.routes.read_text().replace(
            f"Port {fleet_env.by_label['web/eu-west-1/0'].port}", f"Port {free_port()}"
        )
    )
    result = runner.invoke(app, ["ssh", "web/eu-west-1", "--", "true"])
    assert result.exit_code == 1
    assert "web/eu-west-1/0: exit 255" in result.stderr
    assert "ok 1 of 2 host(s)" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ssh", "web"], "'web' is 3 hosts (web/eu-west-1/0, "),
        (["ssh", "web/eu-west-1/5", "--", "true"], "there is no index 5"),
        (["ssh", "web/ap-south-1", "--", "true"], "has no live hosts in 'ap-south-1'"),
        (["ssh", "web/eu-west-1/0", "--identity", "/nonexistent", "--", "true"], "not a file"),
        (["tunnel", "db"], "no live hosts of deployment 'db'"),
    ],
)
def test_bad_targets_exit_2_before_any_ssh(
    fleet_env: Fleet, args: list[str], expected: str
) -> None:
    """Too many hosts for a login, unknown index or region, missing key file: exit 2."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and expected in result.stderr


def test_host_without_public_ip_is_refused(fleet_env: Fleet) -> None:
    """A host with only a private address cannot be reached: exit 2 naming it."""
    launch(ec2("eu-west-1"), uuid=fleet_env.uuid, deployment="inner", count=1, public_ip=False)
    result = runner.invoke(app, ["ssh", "inner", "--", "true"])
    assert result.exit_code == 2
    assert "inner/eu-west-1/0" in result.stderr and "has no public IP address" in result.stderr


def test_missing_key_is_refused_then_the_agent_is_used(
    fleet_env: Fleet, client_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ~/.ssh/<KeyName>[.pem] and no agent: exit 2; with the key in an agent: it works."""
    (fleet_env.home / ".ssh" / KEY_NAME).unlink()
    refused = runner.invoke(app, ["ssh", "web/eu-west-1/0", "--", "true"])
    assert refused.exit_code == 2
    assert f"no key for its key pair '{KEY_NAME}'" in refused.stderr

    sock = fleet_env.home / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not sock.is_socket() and agent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        subprocess.run(
            ["ssh-add", "-q", str(client_key)],
            env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
            check=True,
            timeout=30,
        )
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        result = runner.invoke(app, ["ssh", "web/eu-west-1/0", "--", PROBE])
        assert result.exit_code == 0, result.output
        assert "web/eu-west-1/0: hello from a" in result.stdout
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_key_pair_file_with_pem_suffix_is_found(fleet_env: Fleet) -> None:
    """~/.ssh/<KeyName>.pem works as well as ~/.ssh/<KeyName>."""
    key = fleet_env.home / ".ssh" / KEY_NAME
    key.rename(key.with_name(KEY_NAME + ".pem"))
    assert runner.invoke(app, ["ssh", "web/eu-west-1/0", "--", "true"]).exit_code == 0


@pytest.mark.slow
def test_single_host_login_execs_ssh(fleet_env: Fleet) -> None:
    """One host, no command: perfops becomes ssh (its stdin, its exit code)."""
    result = subprocess.run(
        [sys.executable, "-m", "perfops_cdk.cli.main", "ssh", "web/eu-west-1/1"],
        input="echo interactive on $PERFOPS_STANDIN\nexit 7\n",
        capture_output=True,
        text=True,
        cwd=fleet_env.root,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 7, result.stderr
    assert "interactive on b" in result.stdout


@pytest.mark.slow
def test_ssh_config_lets_plain_ssh_reach_hosts_by_name(fleet_env: Fleet) -> None:
    """Plain ssh with the generated config reaches perfops-web-eu-west-1-0 as perfops would."""
    result = runner.invoke(app, ["ssh-config"])
    assert result.exit_code == 0, result.output
    snippet = fleet_env.root / "perfops.ssh"
    snippet.write_text(result.stdout)
    resolved = subprocess.run(
        ["ssh", "-G", "-F", str(snippet), "perfops-web-eu-west-1-0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert f"hostname {fleet_env.ips['web/eu-west-1/0']}" in resolved
    assert "user root" in resolved
    assert f"hostkeyalias {fleet_env.ids['web/eu-west-1/0']}" in resolved
    assert f"userknownhostsfile {fleet_env.known_hosts()}" in resolved
    assert any(line.endswith(f"/.ssh/{KEY_NAME}") for line in resolved if "identityfile" in line)
    # Only the address is redirected to the stand-in; everything else is the snippet's.
    redirect = fleet_env.root / "redirect.ssh"
    port = fleet_env.by_label["web/eu-west-1/0"].port
    redirect.write_text(
        f"Host perfops-web-eu-west-1-0\n  HostName 127.0.0.1\n  Port {port}\nInclude {snippet}\n"
    )
    ran = subprocess.run(
        ["ssh", "-F", str(redirect), "-o", "BatchMode=yes", "perfops-web-eu-west-1-0", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "hello from a\n"
    assert fleet_env.ids["web/eu-west-1/0"] in fleet_env.known_hosts().read_text()


def _as_from_a_terminal() -> None:
    """In the child: SIGINT handled by default, as for a command typed at a terminal.
    A test suite started in the background (``make test &``) has it ignored, and a
    child would inherit that and never see the Ctrl-C the test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "said"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
    ids=["ctrl-c", "sigterm"],
)
def test_a_stop_signal_stops_every_ssh_of_a_fanout(
    fleet_env: Fleet, signum: int, code: int, said: str
) -> None:
    """Ctrl-C, or SIGTERM (``timeout``, a CI job cancelled) during a fan-out: exit 130 or
    143, one line and no traceback, and none of its ssh keeps running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "perfops_cdk.cli.main", "ssh", "web", "--", "echo up; sleep 120"],
        cwd=fleet_env.root,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_as_from_a_terminal,
    )
    try:
        assert process.stdout is not None
        started = sorted(process.stdout.readline().strip() for _ in range(3))
        assert started == [f"{label}: up" for label in LABELS]
        children = ssh_children(process.pid)
        assert len(children) == 3
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        stop_cli(process)
    assert process.returncode == code, stderr
    assert stderr == f"{said}; every ssh was stopped\n"
    assert not [pid for pid in children if running(pid)]
