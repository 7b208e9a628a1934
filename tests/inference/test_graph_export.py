"""ONNX and torch.export programs: onnxruntime and the loaded program give PyTorch's outputs (≤ 1e-4) at two batch
sizes and, where the family allows it, two image sizes. ViT runs through the CLI in the quick suite; the other
families' exports take 10–25 s each on 2 cores and are marked slow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitkit import create_model
from vitkit.cli import main
from vitkit.inference.export import export_program, onnx_model
from vitkit.tasks.shell import load_task

TOL = 1e-4


def _inputs(model, batch: int, size: int | None) -> tuple[torch.Tensor, ...]:
    cfg = model.config
    if type(model).__name__ == "ImageTransformer":
        return (torch.randint(0, 256, (batch, cfg.in_chans, cfg.img_size, cfg.img_size)),)
    return (torch.randn(batch, 3, size or getattr(cfg, "img_size", 48), size or getattr(cfg, "img_size", 48)),)


def _reference(model, inputs) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(*inputs)
    out = [out["pred_logits"], out["pred_boxes"]] if isinstance(out, dict) else [out]
    return [o.numpy() for o in out]


def _check(model, runners, shapes) -> None:
    torch.manual_seed(0)
    for batch, size in shapes:
        inputs = _inputs(model, batch, size)
        expected = _reference(model, inputs)
        for run in runners:
            got = run(inputs)
            assert [g.shape for g in got] == [e.shape for e in expected]
            for g, e in zip(got, expected, strict=True):
                np.testing.assert_allclose(g, e, atol=TOL, rtol=0)


def _onnx_runner(path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda inputs: session.run(None, {n: x.numpy() for n, x in zip(names, inputs, strict=True)})


def _program_runner(path):
    module = torch.export.load(str(path)).module()

    def run(inputs):
        with torch.no_grad():
            out = module(*inputs)
        return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]

    return run


def test_vit_onnx_and_exported_program_from_the_cli(classifier_ckpt, tmp_path, capsys):
    model = load_task(classifier_ckpt).model
    onnx_path, pt2_path = tmp_path / "m.onnx", tmp_path / "m.pt2"
    assert main(["export", "--ckpt", str(classifier_ckpt), "--format", "onnx", "--out", str(onnx_path)]) == 0
    assert "dynamic dimensions: images [0]" in capsys.readouterr().out  # batch only: the position table is fixed
    assert main(["export", "--ckpt", str(classifier_ckpt), "--format", "exported_program", "--out",
                 str(pt2_path)]) == 0
    _check(model, [_onnx_runner(onnx_path), _program_runner(pt2_path)], [(1, None), (3, None)])


def test_wrong_suffix_and_unknown_format_are_one_line_errors(classifier_ckpt, tmp_path, capsys):
    assert main(["export", "--ckpt", str(classifier_ckpt), "--format", "onnx", "--out", str(tmp_path / "m.pt2")]) == 2
    assert "name it <something>.onnx" in capsys.readouterr().err
    assert main(["export", "--ckpt", str(classifier_ckpt), "--format", "tflite", "--out", "m.tflite"]) == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err


def test_untraceable_model_is_named_with_the_reason():
    from types import SimpleNamespace

    from vitkit.errors import VitkitError
    from vitkit.inference.export import ExportError

    class Branchy(torch.nn.Module):  # a branch on its input's values: a traced graph cannot keep it
        config = SimpleNamespace(img_size=8, in_chans=3)

        def forward(self, x):
            return x.mean((2, 3)) * 2 if bool(x.sum() > 0) else x.mean((2, 3))

    with pytest.raises(ExportError, match="Branchy cannot be exported with torch.export: ") as info:
        export_program(Branchy())
    assert isinstance(info.value, VitkitError) and "\n" not in info.value.one_line()


@pytest.mark.slow
@pytest.mark.parametrize(("name", "shapes"), [
    ("cvt_test", [(1, 32), (3, 48)]),
    ("detr_test", [(1, 48), (2, 80)]),
    ("rtdetr_test", [(1, 64), (3, 80)]),  # 80: padded to 96 inside the graph
    ("image_transformer_test", [(1, None), (3, None)]),
])
def test_family_onnx_and_program_parity(name, shapes, tmp_path):
    model = create_model(name).eval()
    program, sig = export_program(model)
    (tmp_path / "m.onnx").write_bytes(onnx_model(program, sig).SerializeToString())
    torch.export.save(program, tmp_path / "m.pt2")
    _check(model, [_onnx_runner(tmp_path / "m.onnx"), _program_runner(tmp_path / "m.pt2")], shapes)


def test_rtdetr_input_rule_is_the_models_own_limit():
    """The minimum size the export states (log line, ONNX metadata) is exactly where the model stops working."""
    from vitkit.errors import ConfigError
    from vitkit.inference.export import input_requirements

    model = create_model("rtdetr_test", num_queries=50).eval()  # 50 tokens: 3 cells of 32×32 (21 tokens each)
    needs = input_requirements(model)
    assert needs["vitkit.min_image_size"] == "64x64"
    assert needs["vitkit.input_rule"].startswith("ceil(H/32)*ceil(W/32) >= 3")
    with torch.no_grad():
        for h, w in ((32, 96), (33, 65), (64, 64)):  # 3, 6 and 4 cells
            assert model(torch.randn(1, 3, h, w))["pred_boxes"].shape == (1, 50, 4)
        for h, w in ((64, 32), (32, 33), (33, 32)):  # 2 cells each
            with pytest.raises(ConfigError, match="num_queries=50 exceeds the 42 encoder tokens"):
                model(torch.randn(1, 3, h, w))
    assert input_requirements(create_model("vit_test")) == {}


@pytest.mark.slow
def test_rtdetr_onnx_states_its_minimum_size(tmp_path):
    """The ONNX file carries the rule; onnxruntime runs at the minimum and fails (in TopK) below it."""
    import onnx

    from vitkit.inference.export import save_onnx

    model = create_model("rtdetr_test", num_queries=50).eval()
    save_onnx(model, tmp_path / "m.onnx")
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert meta["vitkit.min_image_size"] == "64x64" and "ceil(H/32)*ceil(W/32) >= 3" in meta["vitkit.input_rule"]
    _check(model, [_onnx_runner(tmp_path / "m.onnx")], [(1, 64)])
    run = _onnx_runner(tmp_path / "m.onnx")
    assert [o.shape for o in run((torch.randn(1, 3, 32, 96),))] == [(1, 50, 5), (1, 50, 4)]
    with pytest.raises(Exception, match="TopK"):  # the runtime's own error (k 50 > 42 tokens): why the rule
        run((torch.randn(1, 3, 64, 32),))


def test_export_log_line_states_the_rtdetr_rule(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from vitkit.commands.export import FORMATS
    from vitkit.inference import export

    monkeypatch.setattr(export, "save_onnx", lambda model, out, image_size=None: {"images": [0, 2, 3]})  # no trace
    task = SimpleNamespace(model=create_model("rtdetr_test", num_queries=50), preprocessing={"image_size": 64})
    line = FORMATS["onnx"].write(task, tmp_path / "m.onnx", "x.ckpt")
    assert "dynamic dimensions: images [0, 2, 3]; images: ceil(H/32)*ceil(W/32) >= 3 (smallest square 64x64)" in line
    task.model = create_model("vit_test")
    assert FORMATS["onnx"].write(task, tmp_path / "m.onnx", "x.ckpt").endswith("images [0, 2, 3]")
