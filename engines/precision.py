"""Precision names, and the one mixed-precision rule the back ends share.

Measured on the reference's parity weights (benchmarks/RESULTS.md, "Engines on CPU"): rounding to
bf16 (8 significant bits) or int8 in the stem and the first two trunk stages grows to 15-50% of
the head outputs by the end of the network; from layer3 on, where most of the compute is, the
error stays at a few percent. So reduced precisions keep those early stages in float32, for ~15%
of the bf16 speed-up. (The trained lite model needs no such care; trained sharp weights were not
available to check.)"""
from __future__ import annotations

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# The stages themselves are per variant: VariantSpec.float32_stages (ResNet-style trunks: conv1,
# maxpool, layer1, layer2; nano: none, not measured to need it).
