"""A moto server that enforces IAM and records every action it authorizes.

Run as ``python tests/iam_server.py RECORD_FILE`` with ``INITIAL_NO_AUTH_ACTION_COUNT``
set: moto answers that many requests unchecked (enough to create a first user), then
checks every request against the calling IAM user's policies. Each check is appended
to RECORD_FILE as one JSON line: the IAM action, the resource moto evaluated, the
caller, who sent it (perfops' boto3 or Terraform, from the User-Agent) and whether it
was allowed. Prints the endpoint URL on its first line; stops when stdin closes.

A separate process because moto reads the count once, at import, into a global that
every moto server of a process shares.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import urllib.parse
from typing import Any


def _who(headers: Any) -> str:
    agent = str(headers.get("User-Agent", ""))
    if "Terraform" in agent or "aws-sdk-go" in agent:
        return "terraform"
    if "Boto3" in agent or "Botocore" in agent:
        return "perfops"
    return agent.split(" ")[0] or "unknown"


def _record_checks(path: str) -> None:
    from moto.iam import access_control

    lock = threading.Lock()
    original = access_control.IAMRequestBase.check_action_permitted

    def recording(self: Any, resource: str) -> None:
        entry = {
            "action": self._action,
            "resource": resource,
            "caller": self._access_key.arn,
            "who": _who(self._headers),
            "allowed": True,
        }
        try:
            original(self, resource)
        except Exception:
            entry["allowed"] = False
            raise
        finally:
            with lock, open(path, "a") as out:
                out.write(json.dumps(entry) + "\n")

    setattr(access_control.IAMRequestBase, "check_action_permitted", recording)  # noqa: B010


def _sign_the_raw_body() -> None:
    """moto recomputes a signature over ``body or parsed parameters``: a request with
    an empty body and parameters elsewhere (EBS ``CompleteSnapshot``: headers and path)
    gets its parameters form-encoded into the payload, and a valid signature fails.
    Only a form post (whose body werkzeug has consumed) is signed over its parameters.
    And the query moto passes on is decoded (Terraform's ``prefix=env%3A%2F`` arrives
    as ``env:/``), so it is encoded again as the client did."""
    from botocore.awsrequest import AWSRequest
    from moto.iam import access_control

    def create(self: Any) -> AWSRequest:
        signed = self._get_string_between("SignedHeaders=", ",", self._headers["Authorization"])
        headers = self._create_headers_for_aws_request(signed.split(";"), self._headers)
        form = "x-www-form-urlencoded" in str(self._headers.get("Content-Type", ""))
        body = self._body or (self._data if form else b"")
        path, _, query = self._path.partition("?")
        if query:  # moto hands over the query decoded; a signature covers it encoded
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
            path += "?" + urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote, safe="-_.~")
        request = AWSRequest(method=self._method, url=path, data=body, headers=headers)
        request.context["timestamp"] = headers["X-Amz-Date"]
        return request

    setattr(access_control.IAMRequestBase, "_create_aws_request", create)  # noqa: B010


def main() -> None:
    from moto.server import ThreadedMotoServer

    _record_checks(sys.argv[1])
    _sign_the_raw_body()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"http://{host}:{port}", flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
