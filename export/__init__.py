"""Export SiamMask to ONNX (and TensorRT): three graphs, verified against PyTorch, with a sidecar."""
