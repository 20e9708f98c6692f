"""Benchmark evaluation: dataset loaders, the VOT / OTB / DAVIS protocols and their metrics.

`siammask eval` (siammask/commands/eval.py) is the entry point; `runner.evaluate` ties a loader,
a protocol and the report writers together.
"""
