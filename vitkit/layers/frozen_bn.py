"""Frozen batch normalisation for detection backbones (Carion et al. 2020, §4; as in Faster R-CNN practice).

Detection batches hold a couple of large images per device, far too few for batch statistics, so the backbone's
BatchNorm layers are replaced by a fixed per-channel affine map ``y = x · γ / √(σ² + ε) + (β − μ · γ / √(σ² + ε))``
using the pretrained statistics. ``ε`` is 1e-5, the value both the official DETR code and Hugging Face use
whatever the original layer's ``eps`` was, so their checkpoints reproduce exactly.

Since the map is affine per channel, a frozen BN right after a convolution folds into it:
``conv(x, W)·s + t = conv(x, W·s) + t``. ``fold_frozen_batch_norm`` does this where the order is certain
(sequential containers, timm ResNet blocks): the convolution scales its weight on the fly (cheap: weights are much
smaller than activations), the norm becomes the identity, and a whole elementwise pass over every activation is
saved in the forward and the backward. Parameters and state-dict keys stay where they were.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

DETR_EPS = 1e-5


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters, all stored as buffers (nothing trains).

    The state dict keys are those of ``nn.BatchNorm2d`` (``weight``, ``bias``, ``running_mean``, ``running_var``)
    without ``num_batches_tracked``. ``act`` and ``drop`` carry over the activation and dropout of timm's fused
    ``BatchNormAct2d`` (applied as it does: norm, drop, act).
    """

    def __init__(self, num_features: int, eps: float = DETR_EPS, *, act: nn.Module | None = None,
                 drop: nn.Module | None = None) -> None:
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.drop, self.act = drop, act  # None unless taken over from timm's BatchNormAct2d
        self.folded = False  # set by `fold_frozen_batch_norm`: the preceding convolution applies the affine map

    def scale_shift(self) -> tuple[Tensor, Tensor]:
        """Per-channel ``(scale, shift)`` ``(C,)`` with ``y = x · scale + shift``, in fp32."""
        scale = self.weight.float() * (self.running_var.float() + self.eps).rsqrt()
        return scale, self.bias.float() - self.running_mean.float() * scale

    def forward(self, x: Tensor) -> Tensor:
        if not self.folded:
            scale, shift = self.scale_shift()
            x = torch.addcmul(shift.to(x.dtype)[:, None, None], x, scale.to(x.dtype)[:, None, None])  # (C, 1, 1)
        if self.drop is not None:
            x = self.drop(x)
        return x if self.act is None else self.act(x)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        state_dict.pop(prefix + "num_batches_tracked", None)  # present in BatchNorm2d checkpoints; meaningless here
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}" + (", folded" if self.folded else "")


class FoldedConv2d(nn.Conv2d):
    """A ``Conv2d`` followed by a ``FrozenBatchNorm2d`` it has absorbed: ``conv(x, W·s, b·s + t)``.

    Scaling the weights costs a pass over them (and one more in the backward); the norm it replaces costs a pass
    over the output. So the weights are scaled when the output has more positions than a filter has weights (the
    large early feature maps), and the affine map is applied to the output otherwise (deep layers on small maps,
    where the filters are the bigger tensors). Both compute the same thing.

    Shares the original convolution's parameters (same state-dict keys); the norm stays registered where it was
    (its buffers load as before) and is referenced here, not owned.
    """

    def __init__(self, conv: nn.Conv2d, norm: FrozenBatchNorm2d) -> None:
        nn.Module.__init__(self)
        self.__dict__.update(conv.__dict__)  # the same hyper-parameters and the same Parameter objects
        self.norms = (norm,)  # a tuple, so the norm is not registered twice

    def forward(self, x: Tensor) -> Tensor:
        scale, shift = self.norms[0].scale_shift()
        positions = x.shape[0] * x.shape[-2] * x.shape[-1] // (self.stride[0] * self.stride[1])
        # exported graphs take one path for every size (a branch on the input's shape would pin its sizes)
        if torch.compiler.is_exporting() or positions >= self.weight[0].numel():
            weight = self.weight * scale.to(self.weight.dtype)[:, None, None, None]  # (Cout, Cin/g, kh, kw)
            bias = shift if self.bias is None else self.bias * scale + shift
            return self._conv_forward(x, weight, bias.to(weight.dtype))
        y = self._conv_forward(x, self.weight, self.bias)
        return torch.addcmul(shift.to(y.dtype)[:, None, None], y, scale.to(y.dtype)[:, None, None])


def fold_frozen_batch_norm(module: nn.Module) -> int:
    """Fold every ``FrozenBatchNorm2d`` that certainly consumes only a convolution's output into that convolution.

    Pairs are taken where execution order is known: consecutive children of ``nn.Sequential`` (and of timm's
    sequential feature extractors), and ``convN``/``bnN`` of timm's ResNet blocks. Returns the number folded.
    """
    count = 0
    for parent in list(module.modules()):
        for conv_owner, conv_name, norm in _conv_norm_pairs(parent):
            conv = getattr(conv_owner, conv_name)
            if type(conv) is nn.Conv2d and not norm.folded and conv.out_channels == norm.num_features:
                setattr(conv_owner, conv_name, FoldedConv2d(conv, norm))
                norm.folded = True
                count += 1
    return count


def _conv_norm_pairs(parent: nn.Module):
    """``(owner, conv attribute name, norm)`` triples where the norm directly follows the convolution."""
    cls = type(parent)
    if isinstance(parent, nn.Sequential) or cls.__name__ in ("FeatureListNet", "FeatureDictNet"):
        children = list(parent.named_children())
        for (name, a), (_, b) in zip(children, children[1:], strict=False):
            if isinstance(b, FrozenBatchNorm2d):
                owner, conv_name = _last_leaf(parent, name, a)
                yield owner, conv_name, b
    elif cls.__module__ == "timm.models.resnet" and cls.__name__ in ("BasicBlock", "Bottleneck"):
        for i in (1, 2, 3):
            norm = getattr(parent, f"bn{i}", None)
            if isinstance(norm, FrozenBatchNorm2d) and isinstance(getattr(parent, f"conv{i}", None), nn.Conv2d):
                yield parent, f"conv{i}", norm


def _last_leaf(owner: nn.Module, name: str, child: nn.Module) -> tuple[nn.Module, str]:
    """The module that produces ``child``'s output when ``child`` is a (nested) ``nn.Sequential``."""
    while isinstance(child, nn.Sequential) and len(child):
        owner, name = child, str(len(child) - 1)
        child = child[-1]
    return owner, name


def freeze_batch_norm(module: nn.Module, *, eps: float = DETR_EPS) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` inside ``module`` (in place) by ``FrozenBatchNorm2d`` with its statistics.

    Returns ``module`` (or the replacement when ``module`` itself is a BatchNorm2d).
    """
    if isinstance(module, nn.BatchNorm2d):
        return _frozen_copy(module, eps)
    for name, child in module.named_children():
        new = freeze_batch_norm(child, eps=eps)
        if new is not child:
            setattr(module, name, new)
    return module


def _frozen_copy(bn: nn.BatchNorm2d, eps: float) -> FrozenBatchNorm2d:
    frozen = FrozenBatchNorm2d(bn.num_features, eps, act=getattr(bn, "act", None), drop=getattr(bn, "drop", None))
    with torch.no_grad():
        if bn.affine:
            frozen.weight.copy_(bn.weight)
            frozen.bias.copy_(bn.bias)
        if bn.track_running_stats:
            frozen.running_mean.copy_(bn.running_mean)
            frozen.running_var.copy_(bn.running_var)
    return frozen
