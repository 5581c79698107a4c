"""``easel`` given edge input: an argparse error or one clear line and an exit status,
never a traceback (a huge id, a negative limit, an unwritable file, a database that was
never migrated)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.cli import build_parser
from server.settings import Settings
from tests.server.test_cli import easel, environment

HUGE = "99999999999999999999"  # past PostgreSQL's bigint (and SQLite's integers)


@pytest.mark.parametrize("argv", [
    ["admin", "report", "show", HUGE],
    ["admin", "report", "resolve", "-1"],
    ["admin", "queue", "retry", HUGE],
    ["admin", "jobs", "--retry", HUGE],
    ["admin", "jobs", "--retry", "x"],
    ["admin", "rules", "remove", HUGE],
    ["admin", "reverify", HUGE],
    ["admin", "account", "suspend", "bob", "--report", HUGE],
    ["admin", "appeal", "approve", HUGE],
])
def test_an_id_past_the_database_integers_is_refused_by_the_parser(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert "not an id" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["admin", "jobs", "--limit", "-1"], "--limit: '-1' must be a whole number from 1 to"),
    (["admin", "jobs", "--limit", "0"], "--limit: '0' must be"),
    (["admin", "jobs", "--limit", HUGE], f"--limit: '{HUGE}' must be"),
    (["admin", "reports", "--limit", "-5"], "--limit: '-5' must be"),
    (["admin", "queue", "failures", "--limit", "-1"], "--limit: '-1' must be"),
    (["worker", "--threads", "0"], "--threads: '0' must be a whole number from 1 to"),
    (["worker", "--threads", "many"], "--threads: 'many' must be"),
    (["serve", "--port", "70000"], "--port: '70000' must be a whole number from 1 to 65535"),
    (["admin", "media", "prune", "--older-than", "inf"], "--older-than: 'inf' is not a number of hours"),
    (["admin", "media", "prune", "--older-than", "nan"], "--older-than: 'nan' is not a number of hours"),
])
def test_counts_out_of_range_are_refused_by_the_parser(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_bounded_values_within_range_are_taken() -> None:
    parser = build_parser()
    assert parser.parse_args(["worker", "--threads", "1"]).threads == 1
    assert parser.parse_args(["admin", "jobs", "--limit", "5", "--retry", "7", "8"]).retry == [7, 8]
    assert parser.parse_args(["admin", "reverify", "12"]).media_ids == [12]
    assert parser.parse_args(["admin", "media", "prune", "--older-than", "2.5"]).older_than == 2.5


def test_a_huge_id_on_the_database_is_an_argparse_error(settings: Settings, tmp_path: Path) -> None:
    env = environment(settings)
    for argv in (["admin", "report", "show", HUGE], ["admin", "queue", "retry", HUGE],
                 ["admin", "jobs", "--limit", "-1"]):
        result = easel(argv, env, tmp_path)
        assert result.returncode == 2, (argv, result.stderr)
        assert "Traceback" not in result.stderr


def test_exporting_blocks_to_an_unwritable_path_says_so(settings: Settings, tmp_path: Path) -> None:
    target = tmp_path / "no such folder" / "blocks.csv"
    result = easel(["admin", "domain-block", "export", str(target)], environment(settings), tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"easel: cannot write {target}: ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("argv", [
    ["admin", "queue"],
    ["admin", "queue", "failures"],
    ["admin", "queue", "retry", "--all-failed"],
    ["admin", "jobs"],
    ["admin", "jobs", "--retry"],
    ["admin", "reports"],
    ["admin", "media", "prune", "--dry-run"],
    ["admin", "reprotect", "--dry-run"],
    ["admin", "reverify", "--dry-run"],
])
def test_reading_a_never_migrated_database_asks_for_easel_migrate(
    argv: list[str], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_")}
    env["EASEL_DATA_DIR"] = str(tmp_path / "fresh")
    (tmp_path / "fresh").mkdir()
    result = easel(argv, env, tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr == ("easel: the database has no Easel tables (it was never migrated): "
                             "run `easel migrate`\n")
