"""Every mistake in a declaration is one line naming path, field, value and what is allowed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from stackkit import make_stack

from perfops_cdk import (
    App,
    Deployment,
    Expression,
    ImageAsset,
    InvalidField,
    LocalState,
    MissingAmi,
    PerfOpsError,
    PerfOpsStack,
    RootVolume,
    Rule,
    S3State,
    SecurityGroup,
    Spot,
    UserDataPart,
)

GOOD: dict[str, Any] = {
    "instance_type": "r5d.2xlarge",
    "regions": {"eu-west-1": 1, "us-east-1": 2},
}


def wrong(value: Any) -> Any:
    """A value of the wrong type, passed as a user without a type checker would."""
    return value


def declare(project: Path, **overrides: Any) -> Deployment:
    stack, image = make_stack(project)
    return Deployment(stack, "d1", image=image, **{**GOOD, **overrides})


def error_of(project: Path, **overrides: Any) -> str:
    with pytest.raises(PerfOpsError) as caught:
        declare(project, **overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"regions": {"eu-wset-1": 1}},
            r"perf-ops/d1: regions: 'eu-wset-1' .*did you mean 'eu-west-1'",
        ),
        ({"regions": {}}, r"perf-ops/d1: regions: \{\} .*at least one region"),
        ({"regions": {"eu-west-1": -1}}, r"regions\['eu-west-1'\]: -1 .*0 or more"),
        ({"regions": {"eu-west-1": 1.5}}, r"regions\['eu-west-1'\]: 1.5 .*whole number"),
        ({"regions": {"eu-west-1": True}}, r"regions\['eu-west-1'\]: True .*whole number"),
        (
            {"instance_type": "r5d-2xlarge"},
            r"perf-ops/d1: instance_type: 'r5d-2xlarge' .*r5d.2xlarge",
        ),
        ({"instance_type": "huge"}, r"instance_type: 'huge' is not allowed"),
        (
            {"security_groups": ["allow-http"]},
            r"security_groups: 'allow-http' .*allow-egress, allow-ssh",
        ),
        ({"security_groups": ["allow-ssh"]}, r"security_groups: 'allow-ssh' .*needs ssh_cidrs"),
        ({"security_groups": ["allow-egress", "allow-egress"]}, r"'allow-egress' .*listed once"),
        ({"ssh_cidrs": ["203.0.113.5/24"]}, r"ssh_cidrs: '203.0.113.5/24' .*'203.0.113.0/24'"),
        ({"ssh_cidrs": ["not-a-cidr"]}, r"ssh_cidrs: 'not-a-cidr' .*CIDR block"),
        ({"ssh_cidrs": ["10.0.0.0/33"]}, r"ssh_cidrs: '10.0.0.0/33' .*CIDR block"),
        ({"tags": {f"k{i}": "v" for i in range(45)}}, r"tags: '45 tags' .*at most 44 user tags"),
        ({"tags": {"k" * 129: "v"}}, r"tags key: 'k{129}' .*1 to 128"),
        ({"tags": {"team": "v" * 257}}, r"tags\['team'\]: 'v{257}' .*at most 256"),
        ({"tags": {"aws:owner": "me"}}, r"tags key: 'aws:owner' .*reserved by AWS"),
        ({"root_volume": RootVolume(size_gib=8)}, None),
        (
            {"raw_attributes": {"image_id": "ami-1"}},
            r"raw_attributes: 'image_id' .*root_volume, capacity",
        ),
        ({"user_data": [UserDataPart(name="a", script="x" * 17000)]}, r"user_data: '17.* bytes'"),
        # Wrong types: the value and the expected shape, never a TypeError traceback.
        ({"regions": ["eu-west-1"]}, r"perf-ops/d1: regions: \['eu-west-1'\] .*must map"),
        ({"regions": 5}, r"regions: 5 .*must map at least one region"),
        ({"tags": ["a"]}, r"perf-ops/d1: tags: \['a'\] .*must map tag keys to string values"),
        ({"tags": {"team": 5}}, r"tags\['team'\]: 5 .*must be a string"),
        ({"tags": {5: "v"}}, r"tags key: 5 .*1 to 128"),
        ({"tags": {"team": "a\nb"}}, r"tags\['team'\]: 'a\\nb' .*control characters"),
        ({"tags": {"te\tam": "v"}}, r"tags key: 'te\\tam' .*control characters"),
        ({"tags": {"%{ if x }": "v"}}, r"tags key: '%\{ if x \}' .*provider drops keys"),
        ({"tags": {"#": "v"}}, r"tags key: '#' .*provider drops keys starting with '%'"),
        ({"key_name": 5}, r"perf-ops/d1: key_name: 5 .*1 to 255 ASCII"),
        ({"key_name": ""}, r"key_name: '' .*1 to 255 ASCII"),
        ({"key_name": "ops\n"}, r"key_name: 'ops\\n' .*1 to 255 ASCII"),
        ({"security_groups": 5}, r"security_groups: 5 .*must be a list"),
        ({"security_groups": None}, r"security_groups: None .*must be a list"),
        ({"ssh_cidrs": 22}, r"ssh_cidrs: 22 .*must be a list"),
        ({"user_data": 5}, r"user_data: 5 .*must be a list"),
        ({"root_volume": 30}, r"root_volume: 30 .*must be a RootVolume"),
        ({"spot": True}, r"spot: True .*must be a Spot"),
        ({"raw_attributes": ["ebs_optimized"]}, r"raw_attributes: \['ebs_optimized'\] .*must map"),
        # raw_attributes cannot weaken encryption, IMDSv2, network exposure or user data
        (
            {"raw_attributes": {"ebs_block_device": [{"device_name": "/dev/sdb"}]}},
            r"raw_attributes: 'ebs_block_device' .*volumes are always encrypted; use root_volume",
        ),
        (
            {"raw_attributes": {"credit_specification": {"encrypted": False}}},
            r"raw_attributes: 'credit_specification.encrypted' .*always encrypted",
        ),
        (
            {"raw_attributes": {"network_interface": [{"device_index": 0}]}},
            r"raw_attributes: 'network_interface' .*use security_groups and ssh_cidrs",
        ),
        (
            {"raw_attributes": {"associate_public_ip_address": True}},
            r"raw_attributes: 'associate_public_ip_address' .*network exposure",
        ),
        (
            {
                "raw_attributes": {
                    "capacity_reservation_specification": [{"http_tokens": "optional"}]
                }
            },
            r"'capacity_reservation_specification\[0\].http_tokens' .*IMDSv2 is always required",
        ),
        (
            {"raw_attributes": {"user_data_base64": "ZWNobw=="}},
            r"raw_attributes: 'user_data_base64' .*use user_data parts",
        ),
        (
            {"raw_attributes": {"provisioner": [{"local-exec": {"command": "sh"}}]}},
            r"raw_attributes: 'provisioner' .*Terraform meta-argument",
        ),
        (
            {"raw_attributes": {"tag_specifications": []}},
            r"'tag_specifications' .*set by Deployment",
        ),
        ({"raw_attributes": {5: "x"}}, r"raw_attributes key: 5 .*argument names are strings"),
        (
            {"raw_attributes": {"ebs_optimized": {True}}},
            r"raw_attributes\['ebs_optimized'\]: \{True\} .*strings, numbers, booleans",
        ),
        ({"instance_type": "t3.micro\n"}, r"instance_type: 't3.micro\\n' is not allowed"),
    ],
)
def test_bad_deployment_input_is_one_located_line(
    tmp_path: Path, overrides: dict[str, Any], expected: str | None
) -> None:
    """Each bad Deployment prop fails with the path, the field, the value and the rule."""
    if expected is None:
        assert declare(tmp_path, **overrides).props.root_volume.size_gib == 8
        return
    assert re.search(expected, error_of(tmp_path, **overrides))


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: RootVolume(size_gib=7), r"size_gib: 7 .*from 8 to 16384"),
        (lambda: RootVolume(size_gib=20000), r"size_gib: 20000"),
        (lambda: RootVolume(volume_type="st1"), r"volume_type: 'st1' .*gp2, gp3, io1, io2"),
        (lambda: Spot(max_price="-1"), r"max_price: '-1' .*positive USD price"),
        (lambda: Spot(max_price="cheap"), r"max_price: 'cheap'"),
        (lambda: Rule(from_port=70000, cidrs=["10.0.0.0/8"]), r"from_port: 70000"),
        (lambda: Rule(from_port=22, cidrs=[]), r"cidrs: \[\] .*at least one CIDR"),
        (lambda: Rule(from_port=22, cidrs=["10.0.0.0/8"], protocol="sctp"), r"protocol: 'sctp'"),
        (lambda: Rule(from_port=80, to_port=79, cidrs=["10.0.0.0/8"]), r"to_port: 79 .*80 to"),
        (lambda: SecurityGroup(name="Bad Name"), r"name: 'Bad Name'"),
        (
            lambda: SecurityGroup(
                name="many", ingress=[Rule(from_port=p, cidrs=["10.0.0.0/8"]) for p in range(61)]
            ),
            r"ingress: '61 rules' .*at most 60",
        ),
        (lambda: UserDataPart(name="Bad_Name", script=""), r"name: 'Bad_Name'"),
        (lambda: UserDataPart(name="a", script=wrong(5)), r"script: 5 .*must be a string"),
        (lambda: RootVolume(volume_type=wrong(["gp3"])), r"volume_type: \['gp3'\] .*gp2, gp3"),
        (lambda: Rule(from_port=22, cidrs=5), r"cidrs: 5 .*must be a list"),
        (lambda: Rule(from_port=22, cidrs=["10.0.0.0/8"], description=wrong(5)), r"description: 5"),
        (
            lambda: Rule(from_port=22, cidrs=["10.0.0.0/8"], description="a%b"),
            r"description: 'a%b' .*a-z, A-Z, 0-9, spaces",
        ),
        (lambda: SecurityGroup(name="g", description="x" * 256), r"description: 'x{256}' .*255"),
        (lambda: SecurityGroup(name="g", description="caf\u00e9"), r"description: 'caf\u00e9'"),
        (lambda: SecurityGroup(name="g", ingress=5), r"ingress: 5 .*must be a list"),
        (lambda: SecurityGroup(name="web\n"), r"name: 'web\\n' .*lowercase letters"),
        (
            lambda: S3State(bucket=wrong(5), key="k", region="eu-west-1"),
            r"bucket: 5 .*S3 bucket name",
        ),
        (
            lambda: S3State(bucket="Team_State", key="k", region="eu-west-1"),
            r"bucket: 'Team_State'",
        ),
        (lambda: S3State(bucket="team-state", key="", region="eu-west-1"), r"key: '' .*1 to 1024"),
        (lambda: LocalState(path=wrong(5)), r"path: 5 .*must be a file path"),
    ],
)
def test_bad_props_values_are_rejected(build: Any, expected: str) -> None:
    """Props values are checked when the value object is made."""
    with pytest.raises(InvalidField, match=expected):
        build()


def test_rejects_uuid_of_the_wrong_shape(tmp_path: Path) -> None:
    """A uuid that cannot appear in AWS names is refused at the stack."""
    with pytest.raises(InvalidField, match=r"^perf-ops: uuid: 'Not_OK' .*4 to 32 lowercase"):
        PerfOpsStack(App(), "perf-ops", uuid="Not_OK", project_dir=tmp_path)


def test_rejects_uuid_from_environment_of_the_wrong_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PERF_UUID variable is checked like an explicit uuid and named as the field."""
    monkeypatch.setenv("PERF_UUID", "x")
    with pytest.raises(InvalidField, match=r"PERF_UUID: 'x'"):
        PerfOpsStack(App(), "perf-ops", project_dir=tmp_path)


def test_uuid_file_is_created_once_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without PERF_UUID, a random 10-character uuid is kept in perf-uuid.txt."""
    monkeypatch.delenv("PERF_UUID", raising=False)
    first = PerfOpsStack(App(), "perf-ops", project_dir=tmp_path).uuid
    second = PerfOpsStack(App(), "perf-ops", project_dir=tmp_path).uuid
    assert re.fullmatch(r"[a-z0-9]{10}", first)
    assert first == second == (tmp_path / "perf-uuid.txt").read_text().strip()


def test_rejects_unknown_home_region(tmp_path: Path) -> None:
    """The home region is a region like any other, with a suggestion."""
    with pytest.raises(InvalidField, match=r"home_region: 'euwest1' .*did you mean 'eu-west-1'"):
        make_stack(tmp_path, home_region="euwest1")


def test_rejects_duplicate_construct_ids(tmp_path: Path) -> None:
    """Two deployments with one id would share Terraform names: refused by name."""
    stack, image = make_stack(tmp_path)
    Deployment(stack, "d1", image=image, **GOOD)
    with pytest.raises(InvalidField, match=r"^perf-ops/d1: id: 'd1' .*already has this id"):
        Deployment(stack, "d1", image=image, **GOOD)


def test_rejects_construct_id_that_cannot_name_terraform_resources(tmp_path: Path) -> None:
    """Construct ids become Terraform names, so they must be identifiers."""
    stack, image = make_stack(tmp_path)
    with pytest.raises(InvalidField, match=r"perf-ops/1 bad: id: '1 bad' .*start with a letter"):
        Deployment(stack, "1 bad", image=image, **GOOD)


def test_rejects_image_from_another_stack(tmp_path: Path) -> None:
    """A deployment can only use an image declared on its own stack."""
    stack, _ = make_stack(tmp_path)
    _, foreign = make_stack(tmp_path / "other")
    with pytest.raises(InvalidField, match=r"perf-ops/d1: image: 'node-v1' .*ImageAsset of"):
        Deployment(stack, "d1", image=foreign, **GOOD)


def test_rejects_image_without_ami_in_a_used_region(tmp_path: Path) -> None:
    """The error names the image, every missing region and how to fix it."""
    with pytest.raises(
        MissingAmi,
        match=r"perf-ops/d1: image: 'node-v1' has no AMI in "
        r"ap-south-1, sa-east-1; add them to ami_ids of perf-ops/node",
    ):
        declare(tmp_path, regions={"sa-east-1": 1, "ap-south-1": 1, "eu-west-1": 1})


def test_nix_image_without_sync_names_the_sync_command(tmp_path: Path) -> None:
    """A nix-built image with nothing synced tells the user which command to run."""
    stack, _ = make_stack(tmp_path)
    image = ImageAsset(stack, "built", name="built-v1", container_modules=["k6"])
    with pytest.raises(
        MissingAmi,
        match=r"; run: perfops images sync --names built-v1 --regions eu-west-1$",
    ):
        Deployment(stack, "d1", image=image, instance_type="t3.micro", regions={"eu-west-1": 1})


def test_region_with_zero_hosts_needs_no_ami(tmp_path: Path) -> None:
    """Zero hosts in a region is allowed and needs nothing there."""
    deployment = declare(tmp_path, regions={"eu-west-1": 1, "sa-east-1": 0})
    assert deployment.props.used_regions == ("eu-west-1",)


def test_rejects_duplicate_image_names(tmp_path: Path) -> None:
    """Image names are AMI name prefixes, so two images cannot share one."""
    stack, _ = make_stack(tmp_path)
    with pytest.raises(InvalidField, match=r"perf-ops/again: name: 'node-v1' .*already used"):
        ImageAsset(stack, "again", name="node-v1", container_modules=["k6"])


@pytest.mark.parametrize("ami", ["ami-1", "AMI-0123abcd", "snap-0123abcd"])
def test_rejects_malformed_ami_ids(tmp_path: Path, ami: str) -> None:
    """from_ami_ids checks the shape of every id."""
    stack, _ = make_stack(tmp_path)
    with pytest.raises(InvalidField, match=rf"perf-ops/img: ami_ids\['eu-west-1'\]: '{ami}'"):
        ImageAsset.from_ami_ids(stack, "img", name="img-v1", ami_ids={"eu-west-1": ami})


def test_stack_security_groups_can_be_listed_by_name(tmp_path: Path) -> None:
    """A group declared on the stack is usable by name in every deployment."""
    http = SecurityGroup(name="allow-http", ingress=[Rule(from_port=80, cidrs=["0.0.0.0/0"])])
    stack, image = make_stack(tmp_path, security_groups=[http])
    deployment = Deployment(stack, "d1", image=image, security_groups=["allow-http"], **GOOD)
    assert deployment.groups == [http]


def test_rejects_image_given_by_name_instead_of_construct(tmp_path: Path) -> None:
    """`image` takes the ImageAsset itself; a bare name is named in the error."""
    stack, _ = make_stack(tmp_path)
    with pytest.raises(InvalidField, match=r"perf-ops/d1: image: 'node-v1' .*ImageAsset of"):
        Deployment(stack, "d1", image="node-v1", **GOOD)  # type: ignore[arg-type]


def test_nix_built_image_needs_a_container_module(tmp_path: Path) -> None:
    """mkImage prebuilds one standard container, so a nix-built image names a folder."""
    stack, _ = make_stack(tmp_path)
    with pytest.raises(InvalidField, match=r"perf-ops/bare: container_modules: \[\] .*at least"):
        ImageAsset(stack, "bare", name="bare-v1")


def test_rejects_host_module_that_is_not_a_nix_file(tmp_path: Path) -> None:
    """Host modules are NixOS module files relative to the project."""
    stack, _ = make_stack(tmp_path)
    with pytest.raises(InvalidField, match=r"perf-ops/h: host_modules: 'ssh' .*module file"):
        ImageAsset(stack, "h", name="h-v1", container_modules=["k6"], host_modules=["ssh"])


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"backend": "s3"}, r"^perf-ops: backend: 's3' .*S3State\(...\) or LocalState\(...\)"),
        ({"project_dir": 5}, r"^perf-ops: project_dir: 5 .*directory path"),
        ({"security_groups": 5}, r"^perf-ops: security_groups: 5 .*list of SecurityGroup"),
    ],
)
def test_bad_stack_options_are_one_located_line(
    tmp_path: Path, options: dict[str, Any], expected: str
) -> None:
    """Wrong types given to PerfOpsStack name the stack, the option and the value."""
    options.setdefault("project_dir", tmp_path)
    with pytest.raises(InvalidField, match=expected):
        PerfOpsStack(App(), "perf-ops", uuid="abcd1", **options)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"args": ["a"]}, r"^perf-ops/img: args: \['a'\] .*must map argument names"),
        ({"host_modules": 5}, r"^perf-ops/img: host_modules: 5 .*list of NixOS module files"),
        ({"container_modules": {"k6": 1}}, r"container_modules: \{'k6': 1\} .*must be a list"),
        ({"name": "img-v1\n"}, r"name: 'img-v1\\n' .*3 to 91 letters"),
    ],
)
def test_bad_image_options_are_one_located_line(
    tmp_path: Path, options: dict[str, Any], expected: str
) -> None:
    """Wrong types and trailing newlines given to ImageAsset name the image and the option."""
    stack, _ = make_stack(tmp_path)
    with pytest.raises(InvalidField, match=expected):
        ImageAsset(stack, "img", **{"name": "img-v1", "container_modules": ["k6"], **options})


def test_raw_attributes_may_set_what_deployment_leaves_open(tmp_path: Path) -> None:
    """Arguments that do not touch encryption, IMDS, exposure or user data pass through."""
    raw = {
        "ebs_optimized": True,
        "iam_instance_profile": "load-clients",
        "credit_specification": {"cpu_credits": "unlimited"},
        "placement_group": Expression("${aws_placement_group.load.id}"),
    }
    assert declare(tmp_path, raw_attributes=raw).props.raw_attributes == raw
