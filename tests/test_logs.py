"""Logging: the command sets the library's level (-q/-v before or after the subcommand), and a
spawned serving stage logs at the level it was given, in the serve log's format."""
from __future__ import annotations

import logging
import multiprocessing
import re

from siammask.cli import main
from siammask.pipeline.process import log, stage_main


def test_quiet_and_verbose_set_the_library_level(tmp_path, capsys):
    missing = str(tmp_path / "missing.mp4")
    for argv, level in [(["-q", "track", missing], logging.WARNING), (["track", missing, "-v"], logging.DEBUG),
                        (["track", missing], logging.INFO)]:
        assert main([*argv, "--box", "1,2,3,4"]) == 2
        assert logging.getLogger("siammask").level == level
        assert capsys.readouterr().err.startswith("siammask: error: ")  # errors show at every level


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
