"""A real RTSP server on 127.0.0.1 for the pipeline's tests: GStreamer's gst-rtsp-server streaming a
looping folder of PNG frames as H.264. Runs under Debian's /usr/bin/python3 (PyGObject), not the
project's Python, so it only uses the standard library and gi.

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --frames DIR [--fps 25]

Serves rtsp://127.0.0.1:PORT/test and prints READY once it listens; SIGTERM or SIGINT stops it."""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--frames", required=True, help="folder of 00000.png, 00001.png, ...")
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( multifilesrc location={args.frames}/%05d.png loop=true "
        f"caps=image/png,framerate={args.fps}/1 ! pngdec ! videoconvert ! video/x-raw,format=I420 ! "
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=5 ! rtph264pay name=pay0 pt=96 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print("READY", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
