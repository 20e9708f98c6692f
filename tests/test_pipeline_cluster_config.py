"""Cluster mode's settings (`cluster`, `worker`, a stream's `resources`) pass the same checks as the
rest of the pipeline YAML, and without `--cluster` Ray is never imported. None of this needs Ray."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from siammask.errors import UserError
from siammask.pipeline.config import StreamConfig, WorkerConfig, check_config, load_config, stream_from_dict

from package_layout import module_files
from pipeline_support import ENV

RAY_MODULES = {"siammask.pipeline.cluster", "siammask.pipeline.hosts"}


def config_file(tmp_path, data: dict):
    path = tmp_path / "cams.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_worker_and_resources_load_typed(tmp_path, synthetic_video):
    cfg = load_config(config_file(tmp_path, {
        "cluster": "ray", "worker": {"num_cpus": 1, "num_gpus": 0.25, "max_streams": 8},
        "streams": [{"id": "cam0", "source": str(synthetic_video), "resources": {"camhost1": 1}}]}))
    assert cfg.worker == WorkerConfig(num_cpus=1.0, num_gpus=0.25, max_streams=8)
    assert cfg.streams[0].resources == {"camhost1": 1.0} and type(cfg.streams[0].resources["camhost1"]) is float
    check_config(cfg)


@pytest.mark.parametrize("data, message", [
    ({"worker": {"num_cpus": -1}}, r"worker: num_cpus must be in \[0, 1024\], got -1"),
    ({"worker": {"num_gpus": 65}}, r"worker: num_gpus must be in \[0, 64\]"),
    ({"worker": {"max_streams": 0}}, r"worker: max_streams must be in \[1, 256\], got 0"),
    ({"worker": {"gpus": 1}}, r"worker: unknown key\(s\) gpus; known: max_streams, num_cpus, num_gpus"),
    ({"worker": {"num_cpus": "one"}}, r"worker: num_cpus: expected float, got 'one'"),
    ({"worker": {"num_cpus": float("nan")}}, r"expected a finite number"),
    ({"streams": [{"id": "a", "source": "0", "resources": {"camhost1": 0}}]},
     r"resources.camhost1 must be in \(0, 1e\+06\], got 0"),
    ({"streams": [{"id": "a", "source": "0", "resources": ["camhost1"]}]}, r"resources: expected a mapping"),
    ({"streams": [{"id": "a", "source": "0", "resources": {"camhost1": True}}]}, r"resources.camhost1: expected float"),
])
def test_cluster_settings_out_of_range_or_unknown(tmp_path, data, message):
    with pytest.raises(UserError, match=message):
        load_config(config_file(tmp_path, {"cluster": "ray", **data}))


@pytest.mark.parametrize("data, message", [
    ({"cluster": "ray:/head:6379"}, "is not 'ray'"),
    ({"cluster": "head:port"}, "is not 'ray'"),
    ({"cluster": "ray://head:70000"}, "is not 'ray'"),
    ({"worker": {"num_cpus": 2}}, "worker: is for cluster mode"),
    ({"streams": [{"id": "a", "source": "0", "resources": {"camhost1": 1}}]}, "need --cluster ray"),
    ({"cluster": "ray", "role": "capture", "streams": [{"id": "a", "source": "0", "endpoint": "tcp://127.0.0.1:6000"}]},
     "role capture runs no inference"),
    ({"cluster": "ray", "streams": [{"id": "a", "remote": True, "endpoint": "tcp://camhost:6000"}]},
     "pin its capture to the camera's host with resources"),
    ({"cluster": "ray", "streams": [{"id": "a", "source": "0", "endpoint": "tcp://127.0.0.1:6000"}]},
     "binds each capture on its node's address itself"),
])
def test_cluster_mistakes_are_user_errors(tmp_path, data, message):
    with pytest.raises(UserError, match=message):
        check_config(load_config(config_file(tmp_path, data)))


def test_addresses_that_join_a_cluster_pass(tmp_path):
    for address in ("ray", "auto", "10.0.0.5:6379", "ray://head.example:10001"):
        check_config(load_config(config_file(tmp_path, {"cluster": address})))


@pytest.mark.slow  # starts a process
def test_command_line_refusal_is_one_line_and_exit_2(tmp_path, synthetic_video):
    path = config_file(tmp_path, {"streams": [{"id": "a", "source": str(synthetic_video)}],
                                  "worker": {"max_streams": 0}})
    out = subprocess.run([sys.executable, "-m", "siammask.cli", "serve", "--config", path, "--cluster", "ray"],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"siammask: error: {path}: worker: max_streams must be in [1, 256], got 0"]


@pytest.mark.slow  # starts a process
def test_cluster_without_ray_installed_is_a_one_line_refusal(tmp_path, synthetic_video):
    """Ray made unimportable (a `ray` package that fails to import, first on the path)."""
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("raise ImportError('no Ray here', name='ray')\n")
    path = config_file(tmp_path, {"streams": [{"id": "a", "source": str(synthetic_video)}]})
    out = subprocess.run([sys.executable, "-m", "siammask.cli", "serve", "--config", path, "--cluster", "ray"],
                         capture_output=True, text=True, env={**ENV, "PYTHONPATH": str(tmp_path)}, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "siammask: error: --cluster needs Ray (ray is not installed): pip install 'siammask[cluster]'"]


def test_stream_added_at_run_time_with_resources_needs_a_cluster():
    """What `ctl add-stream` sends goes through stream_from_dict, the supervisor's own check."""
    cfg = load_config(None)
    with pytest.raises(UserError, match="asks for Ray resources"):
        stream_from_dict({"id": "a", "source": "0", "resources": {"camhost1": 1}}, cfg)
    with pytest.raises(UserError, match="asks for Ray resources"):
        check_config(type(cfg)(streams=(StreamConfig("a", "0", resources={"camhost1": 1.0}),)))


@pytest.mark.slow  # starts a process
def test_without_cluster_ray_is_never_imported():
    """Every installed module except the two of cluster mode imports without Ray (so `serve`,
    `track` and the rest never load it); only serve's cluster branch reaches those two."""
    names = sorted(set(module_files()) - RAY_MODULES)
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.slow  # starts processes
@pytest.mark.parametrize("name", sorted(RAY_MODULES))
def test_each_cluster_module_imports_on_its_own(name):
    """No import cycle between the two: each imports first in a fresh interpreter."""
    pytest.importorskip("ray")
    out = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, env=ENV,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
