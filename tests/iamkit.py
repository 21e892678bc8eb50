"""An emulator that enforces IAM: users with exactly the shipped policies, and a record
of every action the emulator authorized.

moto checks the *action* of every request against the caller's policies, but it
evaluates EC2, EBS and STS requests against the resource ``*`` and has no condition
keys for them (docs/iam.md, "What the emulator proves"). ``as_moto_sees_it`` therefore
turns a shipped policy into what moto can evaluate: conditions dropped, non-S3
resources widened to ``*``. S3 statements keep their bucket and key ARNs, which moto
does check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import boto3

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "examples" / "iam"
SERVER = Path(__file__).resolve().parent / "iam_server.py"
# Requests moto answers unchecked: CreateUser, PutUserPolicy, CreateAccessKey of admin.
BOOTSTRAP_CALLS = 3
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


@attrs.frozen
class Check:
    """One authorization moto made."""

    action: str
    resource: str
    caller: str
    who: str  # perfops | terraform | ...
    allowed: bool


def load_policy(name: str) -> dict[str, Any]:
    """A shipped policy document from examples/iam/."""
    data: dict[str, Any] = json.loads((POLICIES / name).read_text())
    return data


def as_moto_sees_it(policy: Mapping[str, Any], *, without: Iterable[str] = ()) -> dict[str, Any]:
    """``policy`` as moto can evaluate it (see the module docstring), minus the actions
    in ``without``. moto treats an Allow whose condition it cannot evaluate as an
    explicit Deny, so keeping conditions would deny what AWS allows."""
    removed = set(without)
    statements = []
    for statement in policy["Statement"]:
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else list(actions)
        kept = [a for a in actions if a not in removed]
        if not kept:
            continue
        resources = statement.get("Resource", "*")
        resources = [resources] if isinstance(resources, str) else list(resources)
        s3_only = all(a.startswith("s3:") for a in kept) and all(
            r.startswith("arn:aws:s3:::") for r in resources
        )
        statements.append(
            {
                "Sid": statement.get("Sid", ""),
                "Effect": statement["Effect"],
                "Action": kept,
                "Resource": resources if s3_only else "*",
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


class EnforcingEmulator:
    """A moto server in its own process that enforces IAM (tests/iam_server.py)."""

    def __init__(self, record: Path) -> None:
        self.record = record
        record.unlink(missing_ok=True)
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(BOOTSTRAP_CALLS)}
        self._process = subprocess.Popen(
            [sys.executable, str(SERVER), str(record)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self._process.stdout is not None
        self.url = self._process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError(f"the IAM-enforcing moto server did not start: {self.url!r}")
        self.admin = self._bootstrap_admin()

    def _client(self, service: str, credentials: Mapping[str, str]) -> Any:
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=self.url,
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        )

    def _bootstrap_admin(self) -> dict[str, str]:
        """The first calls moto leaves unchecked make an administrator; every later
        request, the admin's included, is checked."""
        iam = self._client("iam", {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"})
        iam.create_user(UserName="admin")
        iam.put_user_policy(
            UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(ADMIN_POLICY)
        )
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        return {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }

    def client(self, service: str, region: str = "us-east-1") -> Any:
        """A client with the admin's keys."""
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=self.admin["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.admin["AWS_SECRET_ACCESS_KEY"],
        )

    def user(self, name: str, policies: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
        """A new IAM user with exactly ``policies`` (inline, by name); its keys."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        for policy_name, document in policies.items():
            iam.put_user_policy(
                UserName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document)
            )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }

    def checks(self, caller: str | None = None) -> list[Check]:
        """Every authorization so far (of the user named ``caller``, when given)."""
        if not self.record.exists():
            return []
        found = [Check(**json.loads(line)) for line in self.record.read_text().splitlines()]
        if caller is None:
            return found
        return [c for c in found if c.caller.endswith(f":user/{caller}")]

    def stop(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
