"""state.json: unreadable files are one line with the way out, and a rebuild keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfops_cdk.effects import state_file

HOME = "eu-west-1"
REBUILT = state_file.SyncState(
    images={"a": state_file.ImageRecord("a-1", HOME, {HOME: state_file.RegionImage("ami-1")})}
)
UNREADABLE = {
    "invalid JSON": ("{not json", "not valid JSON"),
    "images as a list": ('{"version": 1, "images": []}', "'images' must be an object"),
    "wrong version": ('{"version": 7, "images": {}}', "not a perfops image state file of version"),
    "not an object": ("[1, 2]", "not a perfops image state file of version"),
    "entry as a list": ('{"version": 1, "images": {"a": []}}', "images.a must be an object"),
    "region as a string": (
        '{"version": 1, "images": {"a": {"ami_name": "a-1", "home_region": "eu-west-1",'
        ' "regions": {"eu-west-1": "ami-1"}}}}',
        "images.a.regions.eu-west-1 must be an object",
    ),
    "unknown field": (
        '{"version": 1, "images": {"a": {"ami_name": "a-1", "home_region": "eu-west-1",'
        ' "regions": {"eu-west-1": {"colour": "red"}}}}}',
        "unexpected keyword argument 'colour'",
    ),
    "missing ami_name": (
        '{"version": 1, "images": {"a": {"home_region": "eu-west-1"}}}',
        "images.a.ami_name must be a string",
    ),
}


@pytest.mark.parametrize(("text", "problem"), UNREADABLE.values(), ids=UNREADABLE.keys())
def test_unreadable_state_is_one_line_naming_the_file_and_the_way_out(
    tmp_path: Path, text: str, problem: str
) -> None:
    """Every malformed state.json raises one line: the file, the problem, the rebuild command."""
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(state_file.CorruptState) as caught:
        state_file.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert problem in message
    assert message.endswith("run: perfops images list --rebuild-state")


def test_rebuild_keeps_a_copy_of_an_unreadable_state_beside_the_new_one(tmp_path: Path) -> None:
    """rebuild writes the new state and keeps the old bytes as state.json.corrupt-<time>."""
    path = tmp_path / "state.json"
    path.write_text('{"version": 1, "images": []}')
    kept = state_file.rebuild(path, REBUILT)
    assert kept is not None and kept.parent == tmp_path
    assert kept.name.startswith("state.json.corrupt-")
    assert kept.read_text() == '{"version": 1, "images": []}'
    assert state_file.load(path) == REBUILT


def test_rebuild_twice_in_one_second_keeps_both_copies(tmp_path: Path) -> None:
    """A second unreadable file never overwrites the copy of the first."""
    path = tmp_path / "state.json"
    path.write_text("first")
    first = state_file.rebuild(path, REBUILT)
    path.write_text("second")
    second = state_file.rebuild(path, REBUILT)
    assert first is not None and second is not None and first != second
    assert (first.read_text(), second.read_text()) == ("first", "second")


def test_rebuild_of_a_readable_or_absent_state_keeps_no_copy(tmp_path: Path) -> None:
    """Only an unreadable file is kept aside; a good one is simply rewritten."""
    path = tmp_path / "state.json"
    assert state_file.rebuild(path, state_file.SyncState()) is None
    assert state_file.rebuild(path, REBUILT) is None
    assert state_file.load(path) == REBUILT
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
