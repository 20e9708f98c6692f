"""Which exported ONNX graphs TensorRT 10 can parse: an op list written down from the onnx-tensorrt
operator support table (TensorRT 10.x), and the one restriction that bit earlier attempts:
convolution weights must be constants, not runtime inputs."""
from __future__ import annotations

from pathlib import Path

from siammask.errors import UserError

# ONNX ops the TensorRT 10 ONNX parser supports (restrictions that matter here in comments).
TENSORRT_ONNX_OPS = frozenset({
    "Abs", "Add", "And", "ArgMax", "ArgMin", "AveragePool", "BatchNormalization", "Cast", "Ceil", "Clip",
    "Concat", "Constant", "ConstantOfShape",
    "Conv", "ConvTranspose",  # weights must be initializers (see runtime_weight_convs)
    "CumSum", "DepthToSpace", "DequantizeLinear", "Div", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand",
    "Flatten", "Floor", "Gather", "GatherElements", "GatherND", "Gemm", "GlobalAveragePool",
    "GlobalMaxPool", "Greater", "GreaterOrEqual", "HardSigmoid", "Identity", "If",
    "InstanceNormalization", "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual", "Log",
    "LogSoftmax", "MatMul", "Max", "MaxPool", "Mean", "Min", "Mod", "Mul", "Neg", "Not", "OneHot", "Or",
    "Pad", "Pow", "PRelu", "QuantizeLinear", "Range", "Reciprocal", "ReduceMax", "ReduceMean",
    "ReduceMin", "ReduceProd", "ReduceSum", "Relu", "Reshape",
    "Resize",  # nearest (asymmetric, floor) and linear modes
    "Round", "ScatterElements", "ScatterND", "Selu", "Shape", "Sigmoid", "Sign", "Sin", "Size", "Slice",
    "Softmax", "Softplus", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "Tile",
    "TopK", "Transpose", "Unsqueeze", "Where", "Xor",
})
_WEIGHT_OPS = ("Conv", "ConvTranspose")


def unsupported_ops(model) -> list[str]:
    """Op types in the graph that TensorRT 10's ONNX parser does not know, sorted."""
    return sorted({n.op_type for n in model.graph.node} - TENSORRT_ONNX_OPS)


def runtime_weight_convs(model) -> list[str]:
    """Names of Conv/ConvTranspose nodes whose weight is computed at run time. A weight counts as
    constant when it is an initializer, a Constant, or (int8 QDQ graphs) DequantizeLinear of one."""
    constant = {i.name for i in model.graph.initializer}
    constant |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    constant |= {n.output[0] for n in model.graph.node
                 if n.op_type == "DequantizeLinear" and n.input[0] in constant}
    return [n.name or n.output[0] for n in model.graph.node
            if n.op_type in _WEIGHT_OPS and n.input[1] not in constant]


def check_tensorrt_compatible(path: Path) -> None:
    """UserError naming the offending ops before TensorRT's parser fails less clearly."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    if bad := unsupported_ops(model):
        raise UserError(f"'{path.name}' uses ops TensorRT 10 does not parse: {', '.join(bad)}")
    if bad := runtime_weight_convs(model):
        raise UserError(f"'{path.name}' has convolutions with runtime weights, which TensorRT rejects: "
                        f"{', '.join(bad[:3])}")
