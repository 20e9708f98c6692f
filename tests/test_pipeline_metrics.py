"""serve's metrics over restarts and removed streams (issue 23): before, every dead stage left its
metrics files and a removed stream kept its series (60 add/remove cycles: /metrics 9.9 -> 87 KB).
A real serve: streams added and removed with the control socket, a capture killed with SIGKILL."""
from __future__ import annotations

import os
import signal

import pytest

from pipeline_support import ANY_PORT, START_TIMEOUT_S, descendants, eventually, free_port, serving

BOX = [25.0, 19.0, 26.0, 19.0]
CYCLES = 4
pytestmark = pytest.mark.slow


def _files_of_dead_processes(serve) -> list[str]:
    """Metrics files named for a pid that is no longer a process of this serve."""
    folder = next(serve.private.glob("siammask-serve-*")) / "metrics"  # endpoints.RunDir
    alive = {str(p) for p in descendants(serve.proc.pid)} | {str(serve.proc.pid)}
    return sorted(f.name for f in folder.glob("*.db") if f.stem.rsplit("_", 1)[1] not in alive | {"archive"})


def test_removed_streams_and_dead_stages_leave_no_series_and_no_files(tmp_path, synthetic_video, lite):
    config = {"streams": [{"id": "a", "source": str(synthetic_video), "loop": True, "fps": 25.0, "boxes": [BOX]}],
              "model": {"weights": str(lite), "threads": 1}, "publish": ANY_PORT,
              "metrics_port": free_port(), "log_interval_s": 0}
    with serving(tmp_path, config) as serve:
        for n in range(CYCLES):
            stream = f"s{n}"
            added = serve.ctl({"cmd": "add_stream", "stream": {"id": stream, "source": str(synthetic_video),
                                                               "loop": True, "fps": 25.0, "boxes": [BOX]}})
            assert added["ok"], added
            published = f'siammask_frames_total{{stage="publish",stream="{stream}"}}'
            eventually(lambda: serve.metrics().get(published, 0) > 3, START_TIMEOUT_S, f"results of {stream}", serve)
            figures = serve.metrics()
            assert f'siammask_lost_targets{{stream="{stream}"}}' in figures  # set on every processed frame
            target = f'{{stream="{stream}",target="0"}}'  # per-target gauges, from the supervisor's registry
            assert 0.0 <= figures[f"siammask_target_score{target}"] <= 1.0
            assert 0.0 <= figures[f"siammask_target_presence{target}"] <= 1.0
            assert figures[f"siammask_target_lost{target}"] in (0.0, 1.0)
            assert serve.ctl({"cmd": "remove_stream", "stream": stream})["ok"]
            left = [name for name in serve.metrics() if f'stream="{stream}"' in name]
            assert left == [], left
        assert _files_of_dead_processes(serve) == []  # the removed streams' captures are folded away

        captured = 'siammask_frames_total{stage="capture",stream="a"}'
        before = serve.metrics()[captured]
        pid = serve.ctl({"cmd": "list"})["processes"]["capture a"]
        os.kill(pid, signal.SIGKILL)
        eventually(lambda: serve.ctl({"cmd": "list"})["processes"].get("capture a", pid) != pid, START_TIMEOUT_S,
                   "a new capture", serve)
        assert serve.metrics()[captured] >= before  # the dead capture's count was folded, not lost
        assert _files_of_dead_processes(serve) == []
        assert serve.metrics()['siammask_restarts_total{stage="capture"}'] == 1
        assert {name.split("{")[0] for name in serve.metrics() if 'stream="a"' in name} >= {
            "siammask_frames_total", "siammask_latency_seconds_bucket"}
