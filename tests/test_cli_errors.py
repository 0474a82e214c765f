"""A budget too small for the baseline is bad input: one line with the fix and exit 2, from `run` and from
`bench discovery` alike, never a traceback (after the line that says the classifier is loading, which is
what tells how many classes there are)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from blindspots.cli.main import app


@pytest.mark.parametrize("command", [["run"], ["bench", "discovery", "--seeds", "1"]])
def test_a_budget_below_the_baseline_is_one_clear_line(tmp_path, command):
    result = CliRunner().invoke(app, [*command, "--budget", "800", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "raise --budget" in result.output and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and "raise --budget" in lines[-1]
    assert lines[:-1] == ["loading the classifier world:classifier"]
