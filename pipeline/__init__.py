"""The real-time serving pipeline behind `siammask serve`: one process per stage, ZeroMQ in between.

    capture (one per source) --frames--> inference (preprocess, infer, postprocess: one batch over
    all targets of all streams) --results--> sink (ZeroMQ PUB, JSON lines, video, MJPEG preview)

A supervisor starts the stages, restarts crashed ones, answers the control endpoint (`siammask ctl`)
and serves Prometheus metrics. Queues are small and the newest frame wins; every dropped frame is
counted per stream and stage, in the metrics and in the next result message of its stream.
"""
