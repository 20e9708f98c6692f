"""Export: the export-friendly ops equal the model's, every graph matches PyTorch through ONNX
Runtime, the sidecar describes the files, and the graphs only use ops TensorRT parses."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import onnx
import pytest
import torch

from siammask.cli import main
from siammask.engines.graph_io import TEMPLATE_IO, mask_io, search_io
from siammask.engines.onnx_session import open_session
from siammask.engines.sidecar import ONE_CROP, SIDECAR, read_sidecar, sha256
from siammask.errors import UserError
from siammask.export.exporter import export_model
from siammask.export.onnx_export import FILES, GRAPH_FILES, graphs_of, random_feeds
from siammask.export.onnx_io import check_graph
from siammask.export.static_ops import xcorr_unrolled
from siammask.export.trt_ops import TENSORRT_ONNX_OPS, runtime_weight_convs, unsupported_ops
from siammask.export.verify import TOLERANCES, check_outputs, relative_error
from siammask.model.heads import xcorr_depthwise
from siammask.model.refine import crop_at

from exports import exported, random_model

VARIANTS = ("sharp", "base", "nano")


@pytest.fixture(scope="session")
def export_dirs(tmp_path_factory):
    root = tmp_path_factory.getbasetemp()
    return {v: exported(v, root) for v in VARIANTS}


@pytest.mark.parametrize("search_hw,kernel_hw", [((29, 29), (5, 5)), ((12, 9), (3, 4))])
def test_xcorr_unrolled_equals_depthwise_conv(search_hw, kernel_hw):
    g = torch.Generator().manual_seed(1)
    search, kernel = torch.randn(3, 16, *search_hw, generator=g), torch.randn(3, 16, *kernel_hw, generator=g)
    ours, ref = xcorr_unrolled(search, kernel), xcorr_depthwise(search, kernel)
    assert ours.shape == ref.shape
    assert relative_error(ours.numpy(), ref.numpy()) <= 1e-6


def _sliced_crop(feature, pad, step, size, pos):
    """The refine crop as the original writes it: pad, then slice per sample in Python."""
    padded = torch.nn.functional.pad(feature, [pad] * 4)
    return torch.stack([padded[i, :, step * y:step * y + size, step * x:step * x + size]
                        for i, (y, x) in enumerate(pos.tolist())])


@pytest.mark.parametrize("channels,hw,pad,step,size", [(64, 125, 16, 4, 61), (256, 63, 8, 2, 31),
                                                        (512, 31, 4, 1, 15), (256, 25, 0, 1, 1)])
def test_gather_crop_equals_slicing(channels, hw, pad, step, size):
    """The refine crops (and the single-position read of the correlation), borders included."""
    g = torch.Generator().manual_seed(2)
    feature = torch.randn(5, channels, hw, hw, generator=g)
    pos = torch.tensor([[0, 0], [24, 24], [0, 24], [24, 0], [7, 13]])
    assert torch.equal(crop_at(feature, pad, step, size, pos), _sliced_crop(feature, pad, step, size, pos))


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_onnx_graphs_match_the_model(export_dirs, variant):
    """ONNX Runtime on the exported graphs against the model's own template/track/mask_logits, on
    fresh random inputs at batch sizes other than the one traced (2): the batch axis is dynamic."""
    model = random_model(variant)
    sessions = {role: open_session(export_dirs[variant] / f, ["CPUExecutionProvider"]) for role, f in FILES.items()}
    search = search_io(variant)
    ios = {"template": TEMPLATE_IO, "search": search, "mask": mask_io(variant)}
    for batch in (1, 3):
        feeds = random_feeds(model, batch, seed=100 + batch)
        with torch.no_grad():
            t = model.template(feeds["template"]["z"])
            out = model.track(feeds["search"]["x"], t)
            mask = model.mask_logits(out, feeds["mask"]["pos_yx"])
        refs = {"template": (t.cls, t.loc, t.mask), "mask": (mask,),
                "search": (out.cls, out.loc, out.mask_corr, *(getattr(out, n) for n in search[1][3:]))}
        for role, (inputs, outputs) in ios.items():
            got = sessions[role].run(list(outputs), {n: feeds[role][n].numpy() for n in inputs})
            ref = {n: r.numpy() for n, r in zip(outputs, refs[role])}
            check_outputs(f"{variant} {role} batch {batch}", dict(zip(outputs, got)), ref, TOLERANCES["fp32"])
            assert got[0].shape[0] == batch
        if variant == "nano" and batch == 1:  # the one-crop search graph: the same outputs for one crop
            one = open_session(export_dirs[variant] / GRAPH_FILES[ONE_CROP], ["CPUExecutionProvider"])
            got = one.run(list(search[1]), {n: feeds["search"][n].numpy() for n in search[0]})
            ref = {n: r.numpy() for n, r in zip(search[1], refs["search"])}
            check_outputs(f"nano {ONE_CROP}", dict(zip(search[1], got)), ref, TOLERANCES["fp32"])


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_sidecar_describes_the_export(export_dirs, variant):
    folder = export_dirs[variant]
    data = json.loads((folder / SIDECAR).read_text())
    assert data["variant"] == variant and data["backend"] == "onnx" and data["precision"] == "fp32"
    assert data["hp"] == {"sharp": "davis", "base": "base", "nano": "nano"}[variant]
    assert data["opset"] == 17 and data["siammask_version"]
    assert data["input_sizes"] == {"template": [3, 127, 127], "search": [3, 255, 255]}
    # nano's ONNX export also has its one-crop search graph (export/graphs.py), verified with the others
    assert data["files"] == (GRAPH_FILES if variant == "nano" else FILES)
    assert all(data["sha256"][f] == sha256(folder / f) for f in data["files"].values())
    assert set(data["verification"]["fp32"]["max_rel_error"]) == set(data["files"])
    check = data["verification"]["fp32"]
    assert check["tolerance"] == TOLERANCES["fp32"]
    assert max(e for per in check["max_rel_error"].values() for e in per.values()) <= TOLERANCES["fp32"]
    assert read_sidecar(folder, backend="onnx").variant == variant


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_graphs_pass_checker_and_use_only_tensorrt_ops(export_dirs, variant):
    for file in FILES.values():
        path = export_dirs[variant] / file
        check_graph(path)
        graph = onnx.load(str(path), load_external_data=False)
        assert graph.opset_import[0].version == 17
        assert unsupported_ops(graph) == [], file
        assert runtime_weight_convs(graph) == [], file
        for tensor in [*graph.graph.input, *graph.graph.output]:
            assert tensor.type.tensor_type.shape.dim[0].dim_param == "batch", (file, tensor.name)
    if variant == "nano":  # traced for one crop, its correlations convolutions with the kernels as weights
        graph = onnx.load(str(export_dirs[variant] / GRAPH_FILES[ONE_CROP]), load_external_data=False)
        assert len(runtime_weight_convs(graph)) == 3  # box, score and mask correlations
        assert {t.type.tensor_type.shape.dim[0].dim_value for t in [*graph.graph.input, *graph.graph.output]} == {1}


def test_op_check_catches_what_tensorrt_rejects(tmp_path):
    """The model's own correlation (a grouped conv with the template as weights) is what TensorRT
    refuses; the checker must flag it, and an op outside the list."""
    class Corr(torch.nn.Module):
        def forward(self, search, kernel):
            return xcorr_depthwise(search, kernel)

    path = tmp_path / "corr.onnx"
    torch.onnx.export(Corr(), (torch.randn(1, 4, 9, 9), torch.randn(1, 4, 3, 3)), str(path), dynamo=False,
                      opset_version=17)
    assert runtime_weight_convs(onnx.load(str(path))) != []
    assert "Einsum" in TENSORRT_ONNX_OPS and "LpNormalization" not in TENSORRT_ONNX_OPS
    node = onnx.helper.make_node("LpNormalization", ["x"], ["y"])
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", 1, [1])],
                                   [onnx.helper.make_tensor_value_info("y", 1, [1])])
    assert unsupported_ops(onnx.helper.make_model(graph)) == ["LpNormalization"]


def test_verification_fails_loudly_beyond_tolerance():
    ref = {"cls": np.ones((2, 10, 25, 25), np.float32)}
    with pytest.raises(UserError, match=r"output 'cls' differs from PyTorch by 0\.01 .*tolerance 0\.0001"):
        check_outputs("search.onnx", {"cls": ref["cls"] * 1.01}, ref, 1e-4)
    with pytest.raises(UserError):
        check_outputs("search.onnx", {"cls": ref["cls"] * np.nan}, ref, 1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_exports_are_verified(tmp_path, precision):
    """fp16 (converted graphs) and int8 (QDQ, calibrated on synthetic tracker crops), on the small
    lite model to keep the test fast; the exporter itself asserts the tolerance."""
    info = export_model(random_model("lite"), tmp_path, precision=precision)
    assert info.precision == precision and precision in info.verification
    assert read_sidecar(tmp_path).precision == precision
    if precision == "int8":
        ops = {n.op_type for n in onnx.load(str(tmp_path / FILES["search"])).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_bf16_export_is_refused(tmp_path):
    with pytest.raises(UserError, match="bf16 is a torch-engine option"):
        export_model(random_model("lite"), tmp_path, precision="bf16")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed")
def test_tensorrt_export_without_tensorrt_is_one_line(tmp_path, capsys, base_checkpoint):
    code = main(["export", "--weights", str(base_checkpoint), "--format", "tensorrt", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("siammask: error: tensorrt is not installed; install TensorRT 10 (pip install tensorrt) "
                   "on a machine with an NVIDIA GPU\n")


def test_tensorrt_build_matches_onnxruntime(tmp_path):
    """Only where TensorRT and a GPU exist: build the lite engines (fp32) and let the builder's own
    check compare them with ONNX Runtime."""
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    info = export_model(random_model("lite"), tmp_path, fmt="tensorrt")
    assert info.backend == "tensorrt" and "tensorrt-fp32" in info.verification


@pytest.mark.slow
def test_cli_export_writes_a_directory_the_tracker_reads(tmp_path, capsys, synthetic_folder, synthetic_frames):
    """`siammask export` then `siammask track --engine onnxruntime --weights DIR` on the lite model."""
    from siammask.checkpoint import save_checkpoint

    weights = save_checkpoint(random_model("lite"), tmp_path / "lite.pth")
    out = tmp_path / "export"
    assert main(["export", "--weights", str(weights), "--out", str(out)]) == 0
    assert "verified fp32" in capsys.readouterr().err
    box = ",".join(f"{v:g}" for v in synthetic_frames[0].box)
    jsonl = tmp_path / "track.jsonl"
    assert main(["track", str(synthetic_folder), "--box", box, "--weights", str(out), "--engine", "onnxruntime",
                 "--json", str(jsonl), "--quiet"]) == 0
    assert len(jsonl.read_text().splitlines()) == len(synthetic_frames)


@pytest.mark.parametrize("variant", ["nano", "nano-3level", "sharp"])
def test_graph_modules_give_the_names_the_engines_bind(variant):
    """Without exporting: the search graph module gives one output per name of search_io (the maps its
    mask graph reads, finest first), and the mask graph module, fed those maps by name, gives the
    model's own mask logits (nano-3level: the earlier three-level refine, still read from old files)."""
    model = random_model(variant)
    graphs = graphs_of(model)
    feeds = random_feeds(model, batch=2, seed=7)
    assert (graphs["search"].inputs, graphs["search"].outputs) == search_io(variant)
    assert (graphs["mask"].inputs, graphs["mask"].outputs) == mask_io(variant)
    with torch.no_grad():
        outs = graphs["search"].module(*(feeds["search"][n] for n in graphs["search"].inputs))
        named = dict(zip(graphs["search"].outputs, outs))
        assert len(outs) == len(graphs["search"].outputs)
        got = graphs["mask"].module(*(named.get(n, feeds["mask"][n]) for n in graphs["mask"].inputs))
        t = model.template(feeds["template"]["z"])
        want = model.mask_logits(model.track(feeds["search"]["x"], t), feeds["mask"]["pos_yx"])
    assert got.shape == (2, 127, 127)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
