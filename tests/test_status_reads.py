"""What ``perfops status`` reads from EC2 (against the emulator over HTTP)."""

from __future__ import annotations

from perfops_cdk.effects import aws, ec2_instances
from perfops_cdk.effects.emulator import Emulator


def test_terminated_instances_are_not_read(emulator: Emulator) -> None:
    """Terminated instances stay listed for about an hour (400 more after each deploy
    and destroy of a fleet); status asks EC2 for the others only."""
    ec2 = aws.client("ec2", "eu-west-1")
    tags = [{"Key": "perf-ops", "Value": "readuuid1"}, {"Key": "deployment", "Value": "web"}]
    ids = [
        i["InstanceId"]
        for i in ec2.run_instances(
            ImageId="ami-03cf127a",
            MinCount=3,
            MaxCount=3,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )["Instances"]
    ]
    ec2.terminate_instances(InstanceIds=ids[:2])
    ec2.stop_instances(InstanceIds=ids[2:])
    hosts = ec2_instances.hosts("eu-west-1", "readuuid1")
    assert [(h.instance_id, h.state) for h in hosts] == [(ids[2], "stopped")]
