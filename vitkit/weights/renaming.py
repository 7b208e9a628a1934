"""The renaming steps every foreign-layout converter shares: ordered key rules, and stacking separate q/k/v
projections into vitkit's one ``qkv``. (BatchNorm's ``num_batches_tracked`` counters are the loader's business:
``vitkit.weights.loading`` ignores them wherever they are or are not.)"""

from __future__ import annotations

import re

import torch
from torch import Tensor


def rename_keys(state_dict: dict[str, Tensor], rules: list[tuple[str, str]]) -> tuple[dict[str, Tensor], list[str]]:
    """Apply the first ``(pattern, replacement)`` rule whose pattern matches the whole key (``re.fullmatch``).

    Returns the renamed dict and the keys no rule matched (kept under their original name, so that the loader
    reports them as unexpected).
    """
    compiled = [(re.compile(p), r) for p, r in rules]
    out, unmatched = {}, []
    for key, value in state_dict.items():
        for pattern, repl in compiled:
            if pattern.fullmatch(key):
                out[pattern.sub(repl, key)] = value
                break
        else:
            out[key] = value
            unmatched.append(key)
    return out, unmatched


def stack_qkv(state_dict: dict[str, Tensor], pattern: str, target: str) -> dict[str, Tensor]:
    """Stack separate query/key/value projections into one ``(3C, …)`` tensor (rows: query, key, value).

    ``pattern`` matches a whole key and has the named groups ``prefix``, ``part`` (``q``, ``k`` or ``v``) and
    ``param``; the stacked tensor is stored under ``target`` expanded with ``prefix`` and ``param`` (e.g.
    ``r"\\g<prefix>qkv.\\g<param>"``). A triple with a part missing is left as it is, so the loader names the stray
    and the missing keys.
    """
    regex = re.compile(pattern)
    out, parts = {}, {}
    for key, value in state_dict.items():
        m = regex.fullmatch(key)
        if m:
            parts.setdefault((m.group("prefix"), m.group("param")), {})[m.group("part")] = (key, value, m)
        else:
            out[key] = value
    for found in parts.values():
        if set(found) == {"q", "k", "v"}:
            match = found["q"][2]
            out[match.expand(target)] = torch.cat([found[c][1] for c in "qkv"], dim=0)  # (3C, C) or (3C,)
        else:
            out.update({key: value for key, value, _ in found.values()})
    return out

