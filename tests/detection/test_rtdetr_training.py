"""RT-DETR training pieces: denoising queries and their attention mask, the focal-cost matcher and the criterion,
against Hugging Face's RT-DETR loss and the official denoising group."""

import pytest
import torch

from vitkit import create_model
from vitkit.detection.denoising import make_denoising_group
from vitkit.detection.rtdetr_criterion import FocalCostMatcher, RTDETRCriterion
from vitkit.layers import masks, set_fused_attention

K, Q = 5, 10


def targets(seed=0, counts=(3, 1)):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in counts:
        centre, size = torch.rand(n, 2, generator=g) * 0.6 + 0.2, torch.rand(n, 2, generator=g) * 0.3 + 0.05
        out.append({"labels": torch.randint(0, K, (n,), generator=g), "boxes": torch.cat([centre, size], 1)})
    return out


def test_denoising_mask_separates_groups_and_hides_them_from_matching():
    m = masks.denoising_groups(2, 3, 4)  # queries 0-2 group 0, 3-5 group 1, 6-9 matching
    assert m.shape == (10, 10)
    assert m[6:, 6:].all() and not m[6:, :6].any()  # matching sees matching only
    assert m[:3, :3].all() and not m[:3, 3:6].any() and m[:3, 6:].all()
    assert m[3:6, 3:6].all() and not m[3:6, :3].any()


def test_denoising_group_equals_hugging_faces():
    from transformers.models.rt_detr.modeling_rt_detr import get_contrastive_denoising_training_group

    embed = torch.nn.Embedding(K + 1, 8, padding_idx=K)
    tgts = targets()
    torch.manual_seed(5)
    ours = make_denoising_group(tgts, embed, num_queries=Q, num_denoising=7)
    torch.manual_seed(5)
    hf_targets = [{"class_labels": t["labels"], "boxes": t["boxes"]} for t in tgts]
    queries, ref, mask, meta = get_contrastive_denoising_training_group(hf_targets, K, Q, embed, 7, 0.5, 1.0)
    assert ours.num_groups == meta["dn_num_group"] == 2
    assert torch.equal(ours.queries, queries) and torch.allclose(ours.reference_logits, ref)
    assert torch.equal(ours.attn_mask, mask == 0)
    for (q, t), positive in zip(ours.matched, meta["dn_positive_idx"], strict=True):
        assert torch.equal(q, positive) and len(t) == len(q)


@pytest.mark.parametrize("fused", [True, False])
def test_denoising_queries_never_influence_matching_queries(fused):
    model = create_model("rtdetr_test").eval()
    set_fused_attention(model, fused)
    images = torch.randn(2, 3, 64, 64)
    torch.manual_seed(0)
    dn = make_denoising_group(targets(), model.denoising_class_embed, num_queries=Q, num_denoising=6)
    with torch.no_grad():
        base = model(images, denoising=dn)
        dn.queries = dn.queries.clone()
        dn.queries[:, 0] += 3.0  # one denoising query of group 0 changes
        dn.reference_logits = dn.reference_logits.clone()
        dn.reference_logits[:, 1] -= 1.0
        moved = model(images, denoising=dn)
    for key in ("pred_logits", "pred_boxes"):
        assert torch.equal(base[key], moved[key])
        assert torch.equal(base["aux_outputs"][0][key], moved["aux_outputs"][0][key])
    size = dn.queries.shape[1] // dn.num_groups
    last = base["dn_outputs"][-1]["pred_boxes"], moved["dn_outputs"][-1]["pred_boxes"]
    assert torch.equal(last[0][:, size:], last[1][:, size:])  # the other group is untouched
    assert not torch.equal(last[0][:, :size], last[1][:, :size])  # the test can see a change


def hf_outputs(out, dn):
    """vitkit's output dict in the layout HF's RTDetrLoss reads."""
    aux = [{"logits": a["pred_logits"], "pred_boxes": a["pred_boxes"]} for a in out["aux_outputs"]]
    aux.append({"logits": out["enc_outputs"]["pred_logits"], "pred_boxes": out["enc_outputs"]["pred_boxes"]})
    dn_aux = [{"logits": a["pred_logits"], "pred_boxes": a["pred_boxes"]} for a in out["dn_outputs"]]
    meta = {"dn_positive_idx": [q for q, _ in dn.matched], "dn_num_group": dn.num_groups}
    return {"logits": out["pred_logits"], "pred_boxes": out["pred_boxes"], "auxiliary_outputs": aux,
            "dn_auxiliary_outputs": dn_aux, "denoising_meta_values": meta}


def test_criterion_and_matcher_equal_hugging_faces_rtdetr_loss():
    from transformers import RTDetrConfig
    from transformers.loss.loss_rt_detr import RTDetrHungarianMatcher, RTDetrLoss

    model = create_model("rtdetr_test").train()
    tgts = targets(counts=(3, 2))
    torch.manual_seed(0)
    dn = make_denoising_group(tgts, model.denoising_class_embed, num_queries=Q, num_denoising=6)
    out = model(torch.randn(2, 3, 64, 64), denoising=dn)
    hf_tgts = [{"class_labels": t["labels"], "boxes": t["boxes"]} for t in tgts]
    config = RTDetrConfig(num_labels=K)
    ours = RTDETRCriterion(K)(out, tgts, dn)
    theirs = RTDetrLoss(config)(hf_outputs(out, dn), hf_tgts)
    L = len(out["aux_outputs"])
    renamed = {k.replace(f"_aux_{L}", "_enc"): v for k, v in theirs.items()}
    for name, value in renamed.items():
        weight = {"vfl": 1.0, "bbox": 5.0, "giou": 2.0}[name.split("_")[1]]
        assert torch.allclose(ours[name] * weight, value, atol=1e-6, rtol=1e-5), name
    assert len(renamed) == len(ours) - 2  # + total and cardinality_error
    assert torch.allclose(ours["loss"], sum(theirs.values()), rtol=1e-5)
    hf_matches = RTDetrHungarianMatcher(config)({"logits": out["pred_logits"], "pred_boxes": out["pred_boxes"]},
                                                hf_tgts)
    for (a, b), (c, d) in zip(FocalCostMatcher()(out["pred_logits"], out["pred_boxes"], tgts), hf_matches,
                              strict=True):
        assert torch.equal(a, c) and torch.equal(b, d)
    ours["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.denoising_class_embed.weight.grad.abs().sum() > 0


def test_no_denoising_when_off_or_without_objects():
    embed = torch.nn.Embedding(K + 1, 8)
    assert make_denoising_group(targets(), embed, num_queries=Q, num_denoising=0) is None
    empty = [{"labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)}]
    assert make_denoising_group(empty, embed, num_queries=Q) is None


def test_denoising_boxes_follow_the_padding():
    """Targets are relative to the unpadded image: a 64×80 image padded to 64×96 inside the model gives the same
    denoising predictions as the explicitly padded image with its targets rescaled."""
    model = create_model("rtdetr_test").eval()
    image = torch.randn(1, 3, 64, 80)
    tgts = targets(counts=(2,))
    padded_tgts = [{"labels": tgts[0]["labels"], "boxes": tgts[0]["boxes"] * torch.tensor([80 / 96, 1, 80 / 96, 1])}]
    torch.manual_seed(1)
    dn = make_denoising_group(tgts, model.denoising_class_embed, num_queries=Q, num_denoising=4, box_noise_scale=0)
    torch.manual_seed(1)
    dn_padded = make_denoising_group(padded_tgts, model.denoising_class_embed, num_queries=Q, num_denoising=4,
                                     box_noise_scale=0)
    with torch.no_grad():
        a = model(image, denoising=dn)["dn_outputs"][-1]["pred_boxes"]
        b = model(torch.nn.functional.pad(image, [0, 16]), denoising=dn_padded)["dn_outputs"][-1]["pred_boxes"]
    assert torch.allclose(a * torch.tensor([80 / 96, 1, 80 / 96, 1]), b, atol=1e-5)
