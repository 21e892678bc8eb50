"""One AWS provider process per Terraform run (effects/provider.py): real Terraform,
the real provider from the mirror, the emulator; and when Terraform keeps its own."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stackkit import UUID

from perfops_cdk import App, Capacity, Deployment, ImageAsset, PerfOpsStack
from perfops_cdk.app import synth
from perfops_cdk.effects import aws, provider, provider_package
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.effects.terraform import Workspace, terraform_env

needs_terraform = pytest.mark.skipif(
    shutil.which("terraform") is None, reason="terraform is not installed"
)
REGION = "eu-west-1"
# The program that starts the provider: this test's interpreter, not Terraform.
PERFOPS = Path(sys.executable).name


def region_stack(project: Path, ami: str) -> Workspace:
    """The one region stack of a deployment of 3 hosts, initialized."""

    def define(app: App) -> None:
        stack = PerfOpsStack(app, "perf-ops", uuid=UUID, project_dir=project)
        image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids={REGION: ami})
        Deployment(
            stack,
            "web",
            image=image,
            capacity=Capacity.on_demand("r5d.xlarge"),
            regions={REGION: 3},
        )

    out = synth(define, project / "cdktf.out")
    workspace = Workspace(out / "stacks" / f"perf-ops-{REGION}", project)
    workspace.init()
    return workspace


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


class ProviderProcesses:
    """Every AWS provider process this test starts, directly or through Terraform,
    seen while it runs (sampled every 10 ms): its arguments and its parent's program."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[list[str], str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def __enter__(self) -> ProviderProcesses:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            for entry in os.listdir("/proc"):
                if entry.isdigit() and int(entry) not in self.seen:
                    self._look(int(entry))
            time.sleep(0.01)

    def _look(self, pid: int) -> None:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
            if "terraform-provider-aws" not in Path(argv[0]).name:
                return
            parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            program = Path(f"/proc/{parent}/cmdline").read_text().split("\0")[0]
        except (OSError, IndexError):
            return
        if os.getpid() in (int(parent), _parent(int(parent))):  # not another test's
            self.seen[pid] = ([a for a in argv[1:] if a], Path(program).name)


@pytest.fixture(autouse=True)
def _shared(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are of the opt-in itself."""
    monkeypatch.setenv(provider.OPT_IN_ENV, "1")


def test_without_the_opt_in_terraform_starts_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One provider per run is opt-in (PERFOPS_SHARED_PROVIDER=1): without it nothing
    is started, even for a stack that qualifies (here it would leave a mark)."""
    monkeypatch.delenv(provider.OPT_IN_ENV)
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    mark = tmp_path / "ran"
    stack = fake_stack(tmp_path, f"#!/bin/sh\ntouch {mark}\n")
    log = tmp_path / "logs" / "stack.log"
    assert attached_to(stack, log, tmp_path) == {}
    assert not mark.exists()


@pytest.fixture
def workspace(tmp_path: Path, emulator: Emulator) -> Iterator[Workspace]:
    ami = aws.client("ec2", REGION).register_image(
        Name="node-v1-test", Architecture="x86_64", RootDeviceName="/dev/xvda"
    )["ImageId"]
    yield region_stack(tmp_path, ami)


def _hosts() -> int:
    reservations = aws.client("ec2", REGION).describe_instances(
        Filters=[
            {"Name": "tag:perf-ops", "Values": [UUID]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    return sum(len(r["Instances"]) for r in reservations)


@needs_terraform
def test_one_provider_process_serves_a_whole_apply_and_destroy(workspace: Workspace) -> None:
    """`apply -auto-approve` would start the provider four times; here each run
    (apply, then destroy) is served by one process perfops started in debug mode,
    Terraform starts none, the hosts exist and then do not, and the lock file Terraform
    wrote at init is untouched."""
    lock = (workspace.dir / ".terraform.lock.hcl").read_text()
    with ProviderProcesses() as applying:
        _, applied = workspace.apply_now()
    assert applied.errors == () and applied.added > 0
    assert _hosts() == 3
    with ProviderProcesses() as destroying:
        _, destroyed = workspace.apply_now(destroy=True)
    assert destroyed.errors == () and destroyed.removed == applied.added
    assert _hosts() == 0 and workspace.state().get("resources", []) == []
    for seen in (applying.seen, destroying.seen):
        assert [(argv, parent) for argv, parent in seen.values()] == [(["-debug"], PERFOPS)]
    assert (workspace.dir / ".terraform.lock.hcl").read_text() == lock


@needs_terraform
def test_a_saved_plan_and_its_apply_each_get_one_process(workspace: Workspace) -> None:
    """The confirmed path (plan, show, apply the saved plan) works attached: each of
    the two runs is served by one process, and the apply does what the plan said."""
    with ProviderProcesses() as seen:
        plan = workspace.plan()
        outcome = workspace.apply_plan(plan)
    assert outcome.errors == ()
    assert outcome.added == sum(1 for c in plan.changes if c.action == "create")
    assert _hosts() == 3
    assert len(seen.seen) == 2
    assert all(argv == ["-debug"] and parent == PERFOPS for argv, parent in seen.seen.values())
    workspace.destroy()


@needs_terraform
def test_the_provider_stops_when_perfops_is_killed(workspace: Workspace, tmp_path: Path) -> None:
    """A perfops killed with SIGKILL leaves no provider running: the pipe its watcher
    reads closes, and the watcher stops the provider and removes the socket's
    directory."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from perfops_cdk.effects import provider\n"
        "from perfops_cdk.effects.terraform import terraform_env\n"
        "with provider.attached(Path(sys.argv[1]), terraform_env(), Path(sys.argv[2]),"
        " rehearsal=None, hashes=Path(sys.argv[3])) as attach:\n"
        "    print(attach[provider.REATTACH_ENV], flush=True)\n"
        "    time.sleep(600)\n"
    )
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            str(workspace.dir),
            str(workspace.log),
            str(tmp_path / "hashes.json"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "AWS_CA_BUNDLE": ""},
    )
    assert child.stdout is not None
    address = json.loads(child.stdout.readline())[provider.AWS_PROVIDER]
    pid, socket = address["Pid"], Path(address["Addr"]["String"])
    assert Path(f"/proc/{pid}").exists() and socket.parent.is_dir()
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 30
    while (Path(f"/proc/{pid}").exists() or socket.parent.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()
    assert not socket.parent.exists()


def attached_to(stack: Path, log: Path, tmp_path: Path) -> dict[str, str]:
    """What a run in ``stack`` is given to attach Terraform to, outside any run."""
    with provider.attached(
        stack, terraform_env(), log, rehearsal=None, hashes=tmp_path / "hashes.json"
    ) as attach:
        return attach


def fake_stack(tmp_path: Path, script: str, *, locked: bool = True) -> Path:
    """A stack directory whose installed aws "provider" is ``script``, with a lock
    file that selects it (its hash among the lock's when ``locked``)."""
    stack = tmp_path / "stack"
    installed = stack / ".terraform/providers" / provider.AWS_PROVIDER / "5.100.0/linux_amd64"
    installed.mkdir(parents=True)
    fake = installed / "terraform-provider-aws_v5.100.0_x5"
    fake.write_text(script)
    fake.chmod(0o755)
    digest = provider_package.package_hash(installed, tmp_path / "hashes.json")
    (stack / ".terraform.lock.hcl").write_text(
        f'provider "{provider.AWS_PROVIDER}" {{\n  version = "5.100.0"\n  hashes = [\n'
        f'    "{digest if locked else "h1:somethingelse="}",\n  ]\n}}\n'
    )
    (stack / "cdk.tf.json").write_text(json.dumps({"provider": {"aws": [{"region": REGION}]}}))
    return stack


def test_a_provider_that_prints_no_address_leaves_terraform_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the installed binary prints no address (here: one that exits at once), the
    run gets no reattach variables, at once, and the stack's log says why."""
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    stack = fake_stack(tmp_path, "#!/bin/sh\necho not a provider\n")
    log = tmp_path / "logs" / "stack.log"
    started = time.monotonic()
    assert attached_to(stack, log, tmp_path) == {}
    assert time.monotonic() - started < provider.START_BUDGET_S
    assert "the provider printed no address" in log.read_text()


def test_a_package_the_lock_file_does_not_name_is_not_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Terraform verifies the provider it starts against the lock file; one it attaches
    to it does not, so perfops checks first: a package whose hash the lock does not
    list is never run (here it would leave a mark), and the log says why."""
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    mark = tmp_path / "ran"
    stack = fake_stack(tmp_path, f"#!/bin/sh\ntouch {mark}\n", locked=False)
    log = tmp_path / "logs" / "stack.log"
    assert attached_to(stack, log, tmp_path) == {}
    assert not mark.exists()
    assert "does not match the lock file's hashes" in log.read_text()


@needs_terraform
def test_the_package_hash_is_the_one_terraform_init_locks(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The h1 hash perfops computes for the installed provider is the one `terraform
    init` wrote into the lock file, and a second process reads it from the cache
    instead of hashing the ~700 MB binary again."""
    cache = tmp_path / "hashes.json"
    monkeypatch.setattr(provider_package, "_known", {})  # as in a new process
    found, reason = provider_package.installed(workspace.dir, cache)
    assert found is not None, reason
    lock = (workspace.dir / ".terraform.lock.hcl").read_text()
    assert provider_package.package_hash(found.parent, cache) in lock
    monkeypatch.setattr(provider_package, "_known", {})
    monkeypatch.setattr(provider_package, "_hash1", refuse)
    assert provider_package.package_hash(found.parent, cache) in lock


def refuse(*_: object) -> str:
    raise AssertionError("hashed again")


def test_a_changed_package_is_hashed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache remembers a package by its files: one that changed (same name, new
    content) is hashed again and no longer matches the lock file."""
    stack = fake_stack(tmp_path, "#!/bin/sh\nexit 0\n")
    cache = tmp_path / "hashes.json"
    found, reason = provider_package.installed(stack, cache)
    assert found is not None, reason
    with found.open("a") as handle:
        handle.write("# changed\n")
    monkeypatch.setattr(provider_package, "_hash1", refuse)
    with pytest.raises(AssertionError, match="hashed again"):
        provider_package.installed(stack, cache)
    monkeypatch.undo()
    found, reason = provider_package.installed(stack, cache)
    assert found is None and "does not match" in reason


def test_reasons_to_keep_terraforms_own_providers(tmp_path: Path) -> None:
    """One process serves one configuration: aliases, several blocks, modules and a CA
    bundle (the provider cannot configure twice with one) keep Terraform's starts."""
    one = {"provider": {"aws": [{"region": REGION}]}}
    assert provider.unshared_reason(one, {}) is None
    assert provider.unshared_reason({}, {}) is None
    cases: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
        "more than once": (
            {"provider": {"aws": [{"region": REGION}, {"region": "us-east-1", "alias": "b"}]}},
            {},
        ),
        "alias": ({"provider": {"aws": [{"region": REGION, "alias": "b"}]}}, {}),
        "modules": ({**one, "module": {"vpc": {"source": "./vpc"}}}, {}),
        "bundle in the block": (
            {"provider": {"aws": [{"region": REGION, "custom_ca_bundle": "/ca.pem"}]}},
            {},
        ),
        "bundle in the environment": (one, {"AWS_CA_BUNDLE": "/ca.pem"}),
    }
    for case, (stack, env) in cases.items():
        assert provider.unshared_reason(stack, env) is not None, case
    config = tmp_path / "config"
    config.write_text("[profile corp]\nca_bundle = /etc/corp.pem\n[default]\nregion = x\n")
    assert provider.unshared_reason(one, {"AWS_CONFIG_FILE": str(config)}) is None
    assert "CA bundle" in str(
        provider.unshared_reason(one, {"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "corp"})
    )


def test_a_rehearsal_drops_the_ca_bundle_and_keeps_the_users_go_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against the plain-HTTP emulator the provider needs no CA bundle (so one process
    can serve the run); against AWS the bundle stays (and the run keeps Terraform's own
    starts). Logging is quiet unless the user asked for a level; a GOGC or GOMEMLIMIT
    the user set wins over perfops' defaults."""
    base = {"AWS_CA_BUNDLE": "/ca.pem", "GOGC": "200"}
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.delenv("GOMEMLIMIT", raising=False)
    rehearsal = provider.provider_env(base, "http://127.0.0.1:5000")
    assert "AWS_CA_BUNDLE" not in rehearsal
    assert rehearsal["TF_LOG_SDK_PROTO"] == "WARN"
    assert (rehearsal["GOGC"], rehearsal["GOMEMLIMIT"]) == ("400", "200MiB")
    real = provider.provider_env({**base, "TF_LOG": "DEBUG"}, None)
    assert real["AWS_CA_BUNDLE"] == "/ca.pem"
    assert real["TF_LOG_PROVIDER"] == "DEBUG"
    monkeypatch.setenv("GOGC", "100")
    assert provider.provider_env({"GOGC": "100"}, None)["GOGC"] == "100"
