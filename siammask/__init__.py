"""SiamMask: real-time object tracking and segmentation."""
import os

# OpenCV and its FFmpeg back end print warnings of their own ("moov atom not found", "can't open
# camera by index") before we can say what went wrong in one line; quiet them unless the user
# asked for their logs. Must happen before cv2 is first imported.
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def __getattr__(name: str):
    """`siammask.load_tracker` without importing torch and the back ends for every `import siammask.x`."""
    if name == "load_tracker":
        from .api import load_tracker
        return load_tracker
    raise AttributeError(f"module 'siammask' has no attribute '{name}'")


__all__ = ["load_tracker"]
