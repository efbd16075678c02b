"""The shared options go before or after the subcommand, and each reads an ELT_ variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from elt.cli import cli, move_global_options


@pytest.mark.parametrize("args, moved", [
    (["--log-format", "json", "status"], ["status", "--log-format", "json"]),
    (["--log-format=json", "-q", "ls", "-s", "x"], ["ls", "-s", "x", "--log-format=json", "-q"]),
    (["-t", "prod", "sandbox", "serve"], ["sandbox", "serve", "-t", "prod"]),
    (["--debug", "sql", "--", "-x"], ["sql", "--debug", "--", "-x"]),
    (["--version"], ["--version"]),
    (["status", "--debug"], ["status", "--debug"]),
])
def test_global_options_before_the_command_move_after_it(args: list[str],
                                                         moved: list[str]) -> None:
    assert move_global_options(args) == moved


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    assert CliRunner().invoke(cli, ["init", str(root), "-q"]).exit_code == 0
    assert CliRunner().invoke(cli, ["build", "-q", "--project-dir", str(root)]).exit_code == 0
    return root


def _last_log_line(root: Path) -> str:
    return (root / "target" / "logs" / "elt.log").read_text().splitlines()[-1]


def test_log_format_before_the_subcommand_is_honoured(tmp_path: Path) -> None:
    root = _project(tmp_path)
    run = CliRunner().invoke(cli, ["--log-format", "json", "--project-dir", str(root),
                                   "status"])
    assert run.exit_code == 0, run.output
    assert json.loads(_last_log_line(root))["msg"] == "finished: ok"


def test_every_shared_option_reads_its_elt_variable(tmp_path: Path) -> None:
    root = _project(tmp_path)
    env = {"ELT_PROJECT_DIR": str(root), "ELT_LOG_FORMAT": "json", "ELT_QUIET": "1"}
    run = CliRunner().invoke(cli, ["ls"], env=env)
    assert run.exit_code == 0, run.output
    assert "raw.people" in run.stdout
    assert json.loads(_last_log_line(root))["msg"] == "finished: ok"
    bad = CliRunner().invoke(cli, ["ls"], env={**env, "ELT_TARGET": "nowhere"})
    assert bad.exit_code == 1 and "nowhere" in bad.output, bad.output
    loud = CliRunner().invoke(cli, ["build"], env={"ELT_PROJECT_DIR": str(root)})
    quiet = CliRunner().invoke(cli, ["build"], env=env)
    assert len(quiet.output) < len(loud.output), (quiet.output, loud.output)
