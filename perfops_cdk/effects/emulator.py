"""The embedded AWS emulator: a moto server on a free loopback port.

Used by ``perfops local-aws``, ``make demo`` and the tests. Always binds port 0
(the kernel picks a free port), so parallel runs never collide.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from perfops_cdk.effects.aws import ENDPOINT_ENV

# The emulator accepts any credentials; these only exist so that boto3 and the
# Terraform provider find *some* credentials. They are never written into synth output.
EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class Emulator:
    """A running moto server."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        # One access-log line per API call would bury everything else we print.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def start(self) -> Emulator:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        # Generous: a loaded machine, or a server still answering a killed client.
        with urllib.request.urlopen(request, timeout=120):
            pass

    def environment(self) -> dict[str, str]:
        """The variables that point boto3, Terraform and perfops at this emulator
        (``AWS_ENDPOINT_URL`` for Terraform started by anything else, e.g. the cdktf
        CLI; perfops sets it on the Terraform it starts)."""
        return {ENDPOINT_ENV: self.url, "AWS_ENDPOINT_URL": self.url, **EMULATOR_ENV}


@contextmanager
def running_emulator(*, export: bool = False) -> Iterator[Emulator]:
    """Start an emulator for the block; with ``export``, set its environment too."""
    emulator = Emulator().start()
    saved = {k: os.environ.get(k) for k in emulator.environment()}
    if export:
        os.environ.update(emulator.environment())
    try:
        yield emulator
    finally:
        if export:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        emulator.stop()
