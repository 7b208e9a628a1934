"""Checkpoints from the Hugging Face Hub: ``hf-hub:ORG/REPO[/FILE]`` ids, and the table of repos vitkit knows.

``resolve(checkpoint)`` turns a checkpoint argument into a local file. A path is returned as it is; a hub id is
fetched with ``huggingface_hub.hf_hub_download`` into that library's own cache (``HF_HUB_CACHE``, else
``HF_HOME/hub``) and the cached file is returned, so that it then loads exactly as a local file does (layout
detection, resampling, key report, no pickled code run). Without ``FILE`` the first of ``WEIGHT_FILES`` that the
repo holds is taken. With ``HF_HUB_OFFLINE=1`` only the cache is read. A file that cannot be had is one
``CheckpointError`` naming the repo and how to place the file by hand; an id unknown to the table is named with
the table's nearest ones.

``PRETRAINED`` is the table behind ``create_model(name, pretrained=True)``: for each preset, the repos known to hold
its weights, the default first. ``BACKBONES`` gives the ImageNet weights of the timm CNNs that DETR uses, for
``pretrained="backbone"`` (the torchvision weights the DETR paper started from); other backbones (RT-DETR's
ResNet-D) take timm's own default weights.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from vitkit.errors import CheckpointError

HUB_PREFIX = "hf-hub:"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # tried in this order when the id names no file

PRETRAINED: dict[str, tuple[str, ...]] = {
    # timm's ViT weights (AugReg: Steiner et al. 2021; DeiT: Touvron et al. 2021): the ImageNet-1k fine-tuned head
    # first (the preset's 1000 classes), then the ImageNet-21k ones (21843 classes: pass num_classes=21843 to keep
    # the head, or any other count for a fresh one) and DeiT.
    "vit_tiny_patch16_224": ("timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k", "timm/vit_tiny_patch16_224.augreg_in21k",
                             "timm/deit_tiny_patch16_224.fb_in1k"),
    "vit_small_patch16_224": ("timm/vit_small_patch16_224.augreg_in21k_ft_in1k",
                              "timm/vit_small_patch16_224.augreg_in21k", "timm/deit_small_patch16_224.fb_in1k"),
    "vit_base_patch16_224": ("timm/vit_base_patch16_224.augreg2_in21k_ft_in1k",
                             "timm/vit_base_patch16_224.augreg_in21k", "timm/vit_base_patch16_224.orig_in21k",
                             "timm/deit_base_patch16_224.fb_in1k"),
    "vit_large_patch16_224": ("timm/vit_large_patch16_224.augreg_in21k_ft_in1k",
                              "timm/vit_large_patch16_224.augreg_in21k"),
    # Hugging Face's ports of microsoft/CvT (ImageNet-1k at 224; the -384 ones at 384, -22k pre-trained on 22k).
    "cvt_13": ("microsoft/cvt-13", "microsoft/cvt-13-384", "microsoft/cvt-13-384-22k"),
    "cvt_21": ("microsoft/cvt-21", "microsoft/cvt-21-384", "microsoft/cvt-21-384-22k"),
    "cvt_w24": ("microsoft/cvt-w24-384-22k",),
    # The DETR paper's COCO models (Hugging Face's copies of the official checkpoints).
    "detr_r50": ("facebook/detr-resnet-50",),
    "detr_r101": ("facebook/detr-resnet-101",),
    "detr_r50_dc5": ("facebook/detr-resnet-50-dc5",),
    # The RT-DETR paper's models as Hugging Face converted the official ones: COCO first, then (R18, R50, R101)
    # pre-trained on Objects365 and fine-tuned on COCO (higher AP, same 80 classes).
    "rtdetr_r18vd": ("PekingU/rtdetr_r18vd", "PekingU/rtdetr_r18vd_coco_o365"),
    "rtdetr_r34vd": ("PekingU/rtdetr_r34vd",),
    "rtdetr_r50vd": ("PekingU/rtdetr_r50vd", "PekingU/rtdetr_r50vd_coco_o365"),
    "rtdetr_r101vd": ("PekingU/rtdetr_r101vd", "PekingU/rtdetr_r101vd_coco_o365"),
}
BACKBONES: dict[str, str] = {
    "resnet18": "timm/resnet18.tv_in1k",
    "resnet50": "timm/resnet50.tv_in1k",
    "resnet101": "timm/resnet101.tv_in1k",
}


def is_hub_id(checkpoint: object) -> bool:
    return isinstance(checkpoint, str) and checkpoint.startswith(HUB_PREFIX)


def parse(hub_id: str) -> tuple[str, str | None]:
    """``"hf-hub:ORG/REPO[/FILE]"`` → ``("ORG/REPO", FILE or None)``."""
    parts = hub_id[len(HUB_PREFIX):].strip("/").split("/")
    if len(parts) < 2 or not all(parts):
        raise CheckpointError(f"{hub_id!r} is not a hub id",
                              "write hf-hub:ORG/REPO or hf-hub:ORG/REPO/FILE, e.g. hf-hub:facebook/detr-resnet-50")
    return "/".join(parts[:2]), "/".join(parts[2:]) or None


def resolve(checkpoint: str | Path) -> Path:
    """A local file for ``checkpoint``: a path as it is, a hub id fetched into (or found in) the Hub cache."""
    if not is_hub_id(checkpoint):
        return Path(checkpoint)
    repo, filename = parse(str(checkpoint))
    return download(repo, filename)


def download(repo: str, filename: str | None = None) -> Path:
    """``filename`` of ``repo`` (default: the first of ``WEIGHT_FILES`` it has) from the Hub cache, fetched first
    unless offline; ``CheckpointError`` saying why not and what to do otherwise."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    candidates = (filename,) if filename else WEIGHT_FILES
    unreachable = False
    for name in candidates:
        try:
            return Path(hf_hub_download(repo, name))
        except LocalEntryNotFoundError:  # offline, or the Hub unreachable, and not in the cache
            unreachable = True
        except EntryNotFoundError:  # the Hub answered: the repo has no such file
            continue
        except RepositoryNotFoundError as e:
            raise CheckpointError(f"hf-hub:{repo}: no such repository on the Hugging Face Hub (or it is private)"
                                  f"{_near(repo)}", "check the name; for a private repo log in with `hf auth login`"
                                  ) from e
    if unreachable:
        raise _not_cached(repo, candidates)
    raise CheckpointError(f"hf-hub:{repo} holds none of {list(candidates)}",
                          f"name the file: hf-hub:{repo}/<file> (its files are listed on huggingface.co/{repo})")


def pretrained_id(name: str) -> str | None:
    """The default hub id of preset ``name`` from ``PRETRAINED``, or ``None``."""
    repos = PRETRAINED.get(name)
    return HUB_PREFIX + repos[0] if repos else None


def known_repos() -> list[str]:
    return sorted({r for repos in PRETRAINED.values() for r in repos} | set(BACKBONES.values()))


def cached_files(repo: str) -> list[str]:
    """The files of ``repo``'s cached snapshots (empty when nothing of it is cached)."""
    from huggingface_hub import constants

    root = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "snapshots"
    return sorted({str(p.relative_to(snap)) for snap in root.glob("*") for p in snap.rglob("*") if p.is_file()})


def _near(repo: str) -> str:
    near = difflib.get_close_matches(repo, known_repos(), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(near)}?" if near and repo not in near else ""


def _not_cached(repo: str, candidates: tuple[str, ...]) -> CheckpointError:
    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE)
    why = "HF_HUB_OFFLINE=1 is set" if constants.HF_HUB_OFFLINE else "the Hub could not be reached"
    have = cached_files(repo)
    if have:
        near = difflib.get_close_matches(candidates[0], have, n=3, cutoff=0.4)
        what = (f"hf-hub:{repo}: {' / '.join(candidates)} not in its cached snapshot, which holds {have[:6]}"
                + (f" (did you mean {', '.join(near)}?)" if near else ""))
    else:
        what = f"hf-hub:{repo} is not in the Hugging Face cache {cache}{_near(repo)}"
    return CheckpointError(
        f"{what}, and {why}",
        f"on a machine with network run `hf download {repo} {candidates[0]}` and copy its cache, or place the file "
        f"by hand at {cache}/models--{repo.replace('/', '--')}/snapshots/<any name>/{candidates[0]} with <any name> "
        f"written in refs/main beside snapshots/, or pass the downloaded file's path as the checkpoint")
