"""SiamMask: real-time object tracking and segmentation."""
