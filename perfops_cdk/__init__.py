"""perfops_cdk: load-test fleets on AWS, declared in Python.

from perfops_cdk import App, PerfOpsStack, ImageAsset, Deployment
from perfops_cdk import HostContainers, ContainerService
# (App is the CDK core's App: cdktf's, or cdktn's with PERFOPS_CDK_BACKEND=cdktn.)

Names are imported on first use: the constructs import cdktf, which starts its jsii
runtime (a node process), and commands that never synthesize (``perfops --help``,
``local-aws``, ``doctor``) should not pay for it or carry it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perfops_cdk._cdktf import App
    from perfops_cdk.constructs.deployment import Deployment
    from perfops_cdk.constructs.host_containers import HostContainers
    from perfops_cdk.constructs.image import ImageAsset, MissingAmi
    from perfops_cdk.constructs.region import LocalState, S3State
    from perfops_cdk.constructs.stack import PerfOpsStack
    from perfops_cdk.errors import EffectError, InvalidField, PerfOpsError
    from perfops_cdk.props.capacity import Capacity
    from perfops_cdk.props.containers import ContainerService
    from perfops_cdk.props.deployment import RootVolume, Spot, UserDataPart
    from perfops_cdk.props.expression import Expression
    from perfops_cdk.props.network import Rule, SecurityGroup

# name -> the module that defines it
_EXPORTS = {
    "App": "perfops_cdk._cdktf",
    "Capacity": "perfops_cdk.props.capacity",
    "ContainerService": "perfops_cdk.props.containers",
    "Deployment": "perfops_cdk.constructs.deployment",
    "EffectError": "perfops_cdk.errors",
    "Expression": "perfops_cdk.props.expression",
    "HostContainers": "perfops_cdk.constructs.host_containers",
    "ImageAsset": "perfops_cdk.constructs.image",
    "InvalidField": "perfops_cdk.errors",
    "LocalState": "perfops_cdk.constructs.region",
    "MissingAmi": "perfops_cdk.constructs.image",
    "PerfOpsError": "perfops_cdk.errors",
    "PerfOpsStack": "perfops_cdk.constructs.stack",
    "RootVolume": "perfops_cdk.props.deployment",
    "Rule": "perfops_cdk.props.network",
    "S3State": "perfops_cdk.constructs.region",
    "SecurityGroup": "perfops_cdk.props.network",
    "Spot": "perfops_cdk.props.deployment",
    "UserDataPart": "perfops_cdk.props.deployment",
}

__all__ = [
    "App",
    "Capacity",
    "ContainerService",
    "Deployment",
    "EffectError",
    "Expression",
    "HostContainers",
    "ImageAsset",
    "InvalidField",
    "LocalState",
    "MissingAmi",
    "PerfOpsError",
    "PerfOpsStack",
    "RootVolume",
    "Rule",
    "S3State",
    "SecurityGroup",
    "Spot",
    "UserDataPart",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'perfops_cdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
