"""SiamMask: real-time object tracking and segmentation."""
import os

# OpenCV and its FFmpeg back end print warnings of their own ("moov atom not found", "can't open
# camera by index") before we can say what went wrong in one line; quiet them unless the user
# asked for their logs. Must happen before cv2 is first imported.
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
