"""perfops_cdk: load-test fleets on AWS, declared in Python.

from perfops_cdk import App, PerfOpsStack, ImageAsset, Deployment
from perfops_cdk import HostContainers, ContainerService
# (App is cdktf's App; ``from cdktf import App`` works the same.)
"""

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
from perfops_cdk.props.network import Rule, SecurityGroup

__all__ = [
    "App",
    "Capacity",
    "ContainerService",
    "Deployment",
    "EffectError",
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
