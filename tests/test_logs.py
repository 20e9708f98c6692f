"""Logging: the command sets the library's level (-q/-v before or after the subcommand), and a
spawned serving stage logs at the level it was given, in the serve log's format."""
from __future__ import annotations

import logging
import multiprocessing
import re

from siammask.cli import main
from siammask.pipeline.process import log, route_logging, stage_main


def test_quiet_and_verbose_set_the_library_level(tmp_path, capsys):
    missing = str(tmp_path / "missing.mp4")
    for argv, level in [(["-q", "track", missing], logging.WARNING), (["track", missing, "-v"], logging.DEBUG),
                        (["track", missing], logging.INFO)]:
        assert main([*argv, "--box", "1,2,3,4"]) == 2
        assert logging.getLogger("siammask").level == level
        # errors show at every level (at INFO the first start's export of the default model may come first)
        assert capsys.readouterr().err.splitlines()[-1].startswith("siammask: error: ")


def test_a_spawned_stage_logs_at_the_level_it_was_given(capfd):
    spawn = multiprocessing.get_context("spawn")
    for level in (logging.INFO, logging.WARNING):
        child = spawn.Process(target=stage_main, args=(level, log, "capture a", f"said at level {level}"))
        child.start()
        child.join(120)
        assert child.exitcode == 0
    err = capfd.readouterr().err
    assert re.search(r"^\d\d:\d\d:\d\d siammask serve \[capture a\]: said at level 20$", err, re.M), err
    assert "said at level 30" not in err  # an info line under --quiet


def test_after_the_command_library_messages_print_once_and_still_reach_other_handlers(tmp_path, capsys, caplog):
    """The command's handler must not cut the library off from an application's (or a test's) own
    logging: records propagate, and nothing else prints them a second time."""
    assert main(["track", str(tmp_path / "missing.mp4"), "--box", "1,2,3,4"]) == 2
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="siammask.io.sources"):
        logging.getLogger("siammask.io.sources").warning("a file ended early")
    assert [r.getMessage() for r in caplog.records] == ["a file ended early"]
    assert capsys.readouterr().err == "siammask: warning: a file ended early\n"


def _warn_as_stage(stage: str) -> None:
    route_logging(stage)
    logging.getLogger("siammask.io.sources").warning("a file ended early")


def test_library_warnings_in_a_stage_process_are_its_log_lines(capfd):
    child = multiprocessing.get_context("spawn").Process(target=stage_main,
                                                         args=(logging.INFO, _warn_as_stage, "capture a"))
    child.start()
    child.join(120)
    assert child.exitcode == 0
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 1 and re.fullmatch(r"\d\d:\d\d:\d\d siammask serve \[capture a\]: a file ended early",
                                            lines[0]), lines
