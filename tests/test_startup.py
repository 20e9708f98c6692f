"""The quick commands stay quick: `siammask --help`, `ctl` and `keys` (and building the whole
parser) import none of the heavy libraries, checked in a fresh interpreter each. (How long they
take is benchmarks/bench_startup.py's, not a test's.)"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import sys

import pytest

HEAVY = ("torch", "cv2", "onnx", "onnxruntime", "ray", "matplotlib", "pycocotools")
SUBPROCESS_TIMEOUT_S = 120  # hang guard only


def imported_after(code: str, cwd=None) -> dict:
    """Run `code` in a fresh interpreter; which of HEAVY (and numpy, PyYAML) it left in sys.modules, and what
    it printed."""
    probe = (f"import json, sys\n{code}\n"
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY) | {'numpy', 'yaml'}!r})))\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd,
                          timeout=SUBPROCESS_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    *printed, modules = proc.stdout.splitlines()
    return {"modules": json.loads(modules), "stdout": "\n".join(printed), "stderr": proc.stderr}


def run_cli(argv: list[str]) -> str:
    """The command as the console script runs it, its exit status kept (help exits with 0)."""
    return (f"import siammask.cli\ntry:\n    status = siammask.cli.main({argv!r})\nexcept SystemExit as exit:\n"
            "    status = exit.code\nprint('status', status)")


def test_building_the_whole_parser_imports_nothing_heavy():
    found = imported_after("import siammask.cli\nparser = siammask.cli.make_parser()\n"
                           "print(json.dumps(sorted(parser._subparsers._group_actions[0].choices)))")
    assert found["modules"] == []  # numpy neither: it alone is ~0.1 s of the 0.3 s budget
    assert {"track", "serve", "ctl", "keys", "eval", "dataset", "export", "bench", "demo"} <= set(
        json.loads(found["stdout"]))


def test_a_named_command_builds_its_own_parser_only_and_a_wrong_one_lists_them_all():
    """Each command's module is imported for its parser only when it is the one run (all eleven: ~35 ms
    of every start); --help, no command or a misspelt one still see every command."""
    import siammask.cli

    probe = ("\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('siammask.commands.') "
             "and m.count('.') == 2)))")
    keys = imported_after(run_cli(["-q", "keys", "--help"]) + probe)
    assert json.loads(keys["stdout"].splitlines()[-1]) == ["siammask.commands.keys"]
    for argv, status in ((["--help"], 0), (["-h", "keys"], 0), (["trakc", "x"], 2), ([], 2)):
        every = imported_after(run_cli(argv) + probe)
        assert set(json.loads(every["stdout"].splitlines()[-1])) >= {
            "siammask.commands.track", "siammask.commands.serve", "siammask.commands.presence"}, argv
        assert f"status {status}" in every["stdout"], argv
    assert "invalid choice: 'trakc' (choose from 'track'," in imported_after(run_cli(["trakc", "x"]))["stderr"]
    whole = siammask.cli.make_parser()._subparsers._group_actions[0].choices
    assert set(whole) == set(siammask.cli.COMMANDS)  # the table names each module's own command
    for name in siammask.cli.COMMANDS:
        assert list(siammask.cli.make_parser(name)._subparsers._group_actions[0].choices) == [name]


@pytest.mark.parametrize("argv", [["--help"], ["ctl", "--help"], ["ctl", "add-stream", "--help"], ["keys", "--help"]])
def test_help_imports_nothing_heavy(argv):
    found = imported_after(run_cli(argv))
    assert found["stdout"].endswith("status 0") and "usage: siammask" in found["stdout"]
    assert found["modules"] == []


def test_ctl_and_keys_run_without_the_heavy_libraries(tmp_path):
    refused = imported_after(run_cli(["ctl", "--control", f"ipc://{tmp_path}/no-serve", "list"]))
    assert refused["stdout"] == "status 2"
    assert refused["stderr"].startswith(f"siammask: error: no control socket at '{tmp_path}/no-serve'")
    assert set(refused["modules"]).isdisjoint(HEAVY)
    assert "yaml" not in refused["modules"]  # no --config: no YAML read, PyYAML not imported
    made = imported_after(run_cli(["keys", "--out", str(tmp_path / "keys")]))
    assert made["stdout"].endswith("status 0") and (tmp_path / "keys" / "server.key_secret").is_file()
    assert set(made["modules"]).isdisjoint(HEAVY)


def test_import_siammask_is_light_and_keeps_its_api():
    found = imported_after("import siammask\nprint(callable(siammask.load_tracker))")
    assert found["stdout"] == "True"  # the attribute loads the API (and its back ends) when asked for
    light = imported_after("import siammask")
    assert set(light["modules"]).isdisjoint(HEAVY)


def test_a_shipped_preset_is_read_without_pyyaml_once_parsed(tmp_path, monkeypatch):
    """A shipped preset's YAML is parsed once per machine and kept as JSON in the cache: later starts
    (`track`) read it without importing PyYAML, with the YAML's values; a damaged cache file is read
    from the YAML again and replaced."""
    from siammask.config import CONFIG_DIR, HP_PRESETS, TrackerConfig, load_hp, load_yaml

    monkeypatch.setenv("SIAMMASK_CACHE_DIR", str(tmp_path))
    for name in HP_PRESETS:  # parsed, then from the cache: both as PyYAML reads the file
        parsed = load_yaml(TrackerConfig, CONFIG_DIR / "hp" / f"{name}.yaml")
        assert load_hp(name) == parsed and load_hp(name) == parsed, name
    assert len(list((tmp_path / "presets").glob("*.json"))) == len(HP_PRESETS)
    code = "import dataclasses\nfrom siammask.config import load_hp\nprint(json.dumps(dataclasses.asdict(load_hp('nano'))))"
    cached = imported_after(code)
    assert "yaml" not in cached["modules"]
    assert json.loads(cached["stdout"]) == json.loads(json.dumps(dataclasses.asdict(load_hp("nano"))))
    for file in (tmp_path / "presets").glob("*.json"):
        file.write_text("{damaged")
    again = imported_after(code)
    assert "yaml" in again["modules"] and again["stdout"] == cached["stdout"]
    assert "yaml" not in imported_after(code)["modules"]  # replaced


def test_a_preset_cached_by_another_release_is_not_read(tmp_path, monkeypatch):
    """The cache key covers the parsing code (siammask/config.py) as well as the YAML: a release whose
    loader differs reads the preset from its YAML and keeps its own entry beside the old one."""
    import siammask.config as config

    monkeypatch.setenv("SIAMMASK_CACHE_DIR", str(tmp_path / "cache"))
    nano = config.load_hp("nano")
    (entry,) = (tmp_path / "cache" / "presets").glob("*.json")
    entry.write_text(json.dumps({**json.loads(entry.read_text()), "verify_every": 7}))
    assert config.load_hp("nano").verify_every == 7  # same release: the entry is what is read
    other = tmp_path / "config.py"
    other.write_bytes(pathlib.Path(config.__file__).read_bytes() + b"\n# another release\n")
    monkeypatch.setattr(config, "__file__", str(other))
    assert config.load_hp("nano") == nano
    assert len(list((tmp_path / "cache" / "presets").glob("*.json"))) == 2
    monkeypatch.setattr(config, "__file__", str(tmp_path / "gone.py"))  # no source to key on: parsed, not cached
    assert config.load_hp("nano") == nano
    assert len(list((tmp_path / "cache" / "presets").glob("*.json"))) == 2


def test_a_preset_cache_entry_others_may_write_is_not_trusted_and_no_home_means_no_cache(tmp_path, monkeypatch):
    """An entry another user could have written (group- or world-writable) is read from the YAML
    instead; without any cache folder (no variable, no home folder: a container's uid without a
    passwd entry) presets and exports go on without the cache."""
    from siammask.config import load_hp
    from siammask.cache_dir import NoCache, cache_root

    monkeypatch.setenv("SIAMMASK_CACHE_DIR", str(tmp_path))
    nano = load_hp("nano")
    (entry,) = (tmp_path / "presets").glob("*.json")
    planted = {**json.loads(entry.read_text()), "verify_every": 7}
    entry.write_text(json.dumps(planted))
    entry.chmod(0o666)
    assert load_hp("nano") == nano  # not the planted value (and the entry is written anew)
    entry.write_text(json.dumps(planted))
    entry.chmod(0o644)
    assert load_hp("nano").verify_every == 7  # the same entry, its owner's only: read (so the check above is real)

    for name in ("SIAMMASK_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)

    def homeless():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(pathlib.Path, "home", staticmethod(homeless))
    with pytest.raises(NoCache):
        cache_root()
    assert load_hp("nano") == nano
