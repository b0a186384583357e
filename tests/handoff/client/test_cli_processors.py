"""``handoff processors``: what this installation would run, from its entry points."""

import pytest

from handoff.client import cli
from handoff.processors import installed
from tests.handoff.test_processors import dist_info


def test_prints_each_purpose_with_its_function(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["processors"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert dict(line.split() for line in lines) == installed({}).targets


def test_a_conflict_is_reported_with_status_1(tmp_path, monkeypatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    dist_info(tmp_path, "a-pkg", {"raw": "a:process"})
    monkeypatch.syspath_prepend(str(tmp_path))

    assert cli.main(["processors"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "two packages register the processor 'raw'" in captured.err
