"""Renaming state-dict keys by ordered regular-expression rules, the common step of the foreign-layout converters."""

from __future__ import annotations

import re

from torch import Tensor


def rename_keys(state_dict: dict[str, Tensor], rules: list[tuple[str, str]]) -> tuple[dict[str, Tensor], list[str]]:
    """Apply the first matching ``(pattern, replacement)`` rule (``re.fullmatch``) to every key.

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
