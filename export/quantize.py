"""int8 graphs by ONNX Runtime static quantization (QDQ), calibrated on recorded tracker inputs."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from siammask.engines.precision import FLOAT32_TRUNK_STAGES
from siammask.errors import UserError

from .calibration import Feeds

# Ops whose inputs get Quantize/DequantizeLinear pairs. Whole Conv-Relu-Add chains must be covered,
# or every int8 convolution would be wrapped in float conversions and run slower than float32.
QUANTIZED_OPS = ("Conv", "ConvTranspose", "Relu", "Add", "MaxPool")


def quantize_graph(src: Path, dst: Path, feeds: Sequence[Feeds], symmetric: bool) -> Path:
    """Quantize `src` into `dst`: per-channel int8 weights, activation ranges from `feeds` (min/max).
    The early trunk stages stay float32 (engines/precision.py). `symmetric`: int8 activations with
    zero point 0, as TensorRT requires; otherwise uint8, the faster form for ONNX Runtime on x86."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self) -> Feeds | None:
            return next(self._it, None)

    if not feeds:
        raise UserError(f"no calibration inputs for {src.name}; give frames the tracker can follow")
    float32 = tuple(f"/trunk/{stage}/" for stage in FLOAT32_TRUNK_STAGES)
    keep = [n.name for n in onnx.load(str(src), load_external_data=False).graph.node if n.name.startswith(float32)]
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(QUANTIZED_OPS), nodes_to_exclude=keep, per_channel=True,
                    activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": symmetric})
    return dst
