"""The one place boto3 clients are made.

``PERFOPS_AWS_ENDPOINT`` points every client (and every Terraform run perfops starts,
see ``perfops_cdk.effects.terraform``) at one endpoint, the local emulator. Without it,
boto3's normal endpoint and credential resolution applies: nothing points at the
emulator by accident.
"""

from __future__ import annotations

import os
import re
import threading
from datetime import datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import parse_timestamp

from perfops_cdk.effects.denied import denial

# Re-exported: callers that make clients also ask which endpoint they point at.
from perfops_cdk.effects.endpoint import EMULATOR_ACCOUNT_ID as EMULATOR_ACCOUNT_ID
from perfops_cdk.effects.endpoint import ENDPOINT_ENV as ENDPOINT_ENV
from perfops_cdk.effects.endpoint import endpoint_url as endpoint_url
from perfops_cdk.errors import EffectError

# Retries: adaptive mode adds client-side rate limiting on throttling on top of
# standard mode's backoff; the attempt budget is explicit rather than botocore's default.
DEFAULT_MAX_ATTEMPTS = 8


# What a client's credentials and endpoint come from: a cached client is reused only
# while these are unchanged (a test or a script may switch keys within one process).
_IDENTITY_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    ENDPOINT_ENV,
)
_cache_lock = threading.Lock()
_sessions: dict[tuple[str, ...], Any] = {}
_clients: dict[tuple[Any, ...], Any] = {}


_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, but ISO 8601 text (what EC2 and the other query
    APIs send) is read by the standard library: 1.4 us a value instead of dateutil's
    100 us (three per instance; 0.13 CPU-s of a ``perfops status`` of 400 hosts).
    Epoch numbers and RFC 822 dates still go to botocore."""
    if isinstance(value, str) and not _NUMBER.fullmatch(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    parsed: datetime = parse_timestamp(value)
    return parsed


def _session() -> Any:
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=timestamp)
    return boto3.session.Session(botocore_session=core)


def client(
    service: str,
    region: str,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    max_pool_connections: int = 10,
    endpoint: str | None = None,
) -> Any:
    """A boto3 client for ``service`` in ``region`` with explicit retry budget.

    Clients come from one shared session per identity (credential environment and
    endpoint) and are cached: making a client loads its service model
    (about 0.5 s of CPU for EC2 on a fresh session), and a deploy over 17 regions asks
    for EC2 clients several times per region. Clients are thread-safe; sessions are
    not, so the shared one is only used under a lock.
    """
    url = endpoint or endpoint_url()
    identity = tuple(os.environ.get(name, "") for name in _IDENTITY_ENV)
    key = (identity, service, region, url, max_attempts, max_pool_connections)
    with _cache_lock:
        made = _clients.get(key)
        if made is None:
            config = Config(
                region_name=region,
                retries={"mode": "adaptive", "max_attempts": max_attempts},
                max_pool_connections=max_pool_connections,
                s3={"addressing_style": "path"},
            )
            shared = _sessions.get(identity)
            if shared is None:
                shared = _sessions[identity] = _session()
            made = _clients[key] = shared.client(
                service, region_name=region, endpoint_url=url, config=config
            )
            _load_models(made)
        return made


def _load_models(client: Any) -> None:
    """Load the service's pagination and waiter models now, under the cache lock.
    botocore loads each at a client's first ``get_paginator`` / ``get_waiter``,
    scanning its data directory (some 420 services) the first time in a process; 17
    region threads doing that at once each ran the scan, holding each other off the
    GIL: about a second of a 17-region ``perfops status``."""
    operations = client.meta.method_to_api_mapping
    if operations:
        client.can_paginate(next(iter(operations)))
    client.waiter_names  # noqa: B018 (reading it loads the waiter model)


def effect_error(client: Any, operation: str, exc: ClientError | BotoCoreError) -> EffectError:
    """One line naming the region, the call and AWS's error code and message; for an
    access denial, the IAM action to grant instead of AWS's (often encoded) message."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "?")), str(error.get("Message", exc))
        denied = denial(
            message,
            code=code,
            service=client.meta.service_model.signing_name,
            operation=client.meta.method_to_api_mapping.get(operation, operation),
        )
        detail = f"{denied.line()} ({code})" if denied else f"{code}: {message}"
    else:
        detail = str(exc)
    return EffectError(f"{client.meta.region_name}: {operation} failed: {detail}")


def call(client: Any, operation: str, **kwargs: Any) -> Any:
    """``client.<operation>(**kwargs)``, with AWS errors as one EffectError line."""
    try:
        return getattr(client, operation)(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise effect_error(client, operation, exc) from exc


def paginate(client: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    """Every item under ``key`` across the pages of ``operation``, as one EffectError
    line on failure."""
    try:
        pages = client.get_paginator(operation).paginate(**kwargs)
        return [item for page in pages for item in page.get(key, [])]
    except (ClientError, BotoCoreError) as exc:
        raise effect_error(client, operation, exc) from exc


def error_code(exc: BaseException) -> str:
    """AWS's error code behind an EffectError from ``call``/``paginate`` ('' if none)."""
    cause = exc.__cause__ if isinstance(exc, EffectError) else exc
    if isinstance(cause, ClientError):
        return str(cause.response.get("Error", {}).get("Code", ""))
    return ""
