"""A malformed image state file is one line naming the file, the entry and the rule."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from perfops_cdk.effects import state_file
from perfops_cdk.errors import PerfOpsError

GOOD_IMAGE = {"ami_name": "node-v1-abc", "home_region": "eu-west-1", "regions": {}}


@pytest.mark.parametrize(
    ("images", "expected"),
    [
        ([], r"images: \[\] is not allowed; must map image names"),
        ({"node": []}, r"images\['node'\]: \[\] .*ami_name and home_region"),
        ({"node": {"ami_name": 5}}, r"images\['node'\]: \{'ami_name': 5\} .*ami_name"),
        ({"node": {**GOOD_IMAGE, "regions": []}}, r"images\['node'\].regions: \[\] .*map regions"),
        (
            {"node": {**GOOD_IMAGE, "regions": {"eu-west-1": {"ami_id": 5}}}},
            r"images\['node'\].regions\['eu-west-1'\]: \{'ami_id': 5\} .*must hold strings",
        ),
        (
            {"node": {**GOOD_IMAGE, "regions": {"eu-west-1": {"colour": "red"}}}},
            r"regions\['eu-west-1'\]: \{'colour': 'red'\} .*ami_id, import_task_id",
        ),
    ],
)
def test_malformed_state_is_one_line_naming_the_file(
    tmp_path: Path, images: Any, expected: str
) -> None:
    """Each shape error names state.json, the entry, the value and what it should hold."""
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 1, "images": images}))
    with pytest.raises(PerfOpsError) as caught:
        state_file.load(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert re.search(expected, message), message


def test_well_formed_state_loads(tmp_path: Path) -> None:
    """The checks accept what the sync writes."""
    path = tmp_path / "state.json"
    region = {"ami_id": "ami-0123abcd", "snapshot_id": None, "state": "available"}
    path.write_text(
        json.dumps({"version": 1, "images": {"node": {**GOOD_IMAGE, "regions": {"r": region}}}})
    )
    assert state_file.load(path).ami_ids("node") == {"r": "ami-0123abcd"}
