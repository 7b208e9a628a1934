"""The official lyuwenyu/RT-DETR checkpoint layouts (``rtdetr_pytorch`` and ``rtdetrv2_pytorch``, r18vd), from the key
names and shapes their code produces, recorded by ``scripts/check_official_rtdetr.py --keys-out`` (which also checks
the outputs against the official code): every official tensor is consumed, every vitkit tensor is filled, once."""

import itertools
import re
from pathlib import Path

import pytest
import torch

from vitkit import create_model
from vitkit.weights.loading import load_state_dict
from vitkit.weights.rtdetr import HEAD_PREFIXES, convert

FIXTURES = Path(__file__).parent / "fixtures"
COMPUTED = ("num_batches_tracked", "decoder.anchors", "decoder.valid_mask", "num_points_scale")  # nothing to load


def official_keys(name: str) -> dict[str, tuple[int, ...]]:
    """``name (shape)`` lines, ``{a..b}`` standing for every number from a to b."""
    keys = {}
    for line in (FIXTURES / name).read_text().splitlines():
        key, shape = line.split(" ", 1)
        runs = [range(int(a), int(b) + 1) for a, b in re.findall(r"\{(\d+)\.\.(\d+)\}", key)]
        template = re.sub(r"\{\d+\.\.\d+\}", "{}", key)
        for numbers in itertools.product(*runs):
            keys[template.format(*numbers)] = tuple(int(d) for d in re.findall(r"\d+", shape))
    return keys


@pytest.fixture(scope="module")
def r18vd():
    return create_model("rtdetr_r18vd")


@pytest.mark.parametrize("fixture, count", [("official_rtdetr_r18vd_keys.txt", 533),
                                            ("official_rtdetrv2_r18vd_keys.txt", 538)])
def test_every_official_tensor_fills_one_vitkit_tensor(r18vd, fixture, count):
    keys = official_keys(fixture)
    assert len(keys) == count  # as the official code printed it
    official = {k: torch.full(shape, float(i)) for i, (k, shape) in enumerate(keys.items())}  # each its own value
    converted, notes = convert(official, r18vd)
    assert not [n for n in notes if "no vitkit counterpart" in n], notes
    report = load_state_dict(r18vd, converted, source=fixture, head_prefixes=HEAD_PREFIXES)
    assert report.reinitialized == [] and report.skipped == []  # nothing missing, nothing left over
    to_load = {i for i, k in enumerate(keys) if not k.endswith(COMPUTED)}
    loaded = [int(v.flatten()[0]) for k, v in converted.items() if not k.endswith("num_batches_tracked")]
    assert sorted(loaded) == sorted(to_load)  # every official tensor used exactly once
    index = {k: i for i, k in enumerate(keys)}
    pairs = {  # official → vitkit where shapes alone cannot tell (the output check of the script pins the rest)
        "backbone.conv1.conv1_3.norm.weight": "backbone.bn1.weight",
        "backbone.res_layers.1.blocks.0.short.conv.norm.running_var": "backbone.layer2.0.downsample.2.running_var",
        "backbone.res_layers.3.blocks.1.branch2b.norm.bias": "backbone.layer4.1.bn2.bias",
        "encoder.encoder.0.layers.0.norm2.weight": "encoder.aifi.0.norm2.weight",
        "decoder.decoder.layers.2.norm3.bias": "decoder.layers.2.norm3.bias",
        "decoder.decoder.layers.1.cross_attn.value_proj.weight": "decoder.layers.1.cross_attn.value_proj.weight",
        "decoder.dec_bbox_head.2.layers.1.weight": "decoder.box_heads.2.layers.1.weight",
    }
    pairs["decoder.enc_output.norm.bias" if "v2" in fixture else "decoder.enc_output.1.bias"] = "enc_output.1.bias"
    for theirs, ours in pairs.items():
        assert converted[ours].flatten()[0] == index[theirs], (theirs, ours)
