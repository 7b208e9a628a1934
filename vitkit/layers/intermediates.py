"""Which intermediate outputs to return (``forward_intermediates``, timm's convention for feature extraction).

``indices`` ``None`` takes all ``n`` outputs, an int ``k`` the last ``k``, a sequence those positions (negative ones
counted from the end).
"""

from __future__ import annotations

from collections.abc import Sequence


def take_indices(n: int, indices: int | Sequence[int] | None) -> list[int]:
    """Sorted absolute positions in ``range(n)`` selected by ``indices``; a ``ValueError`` names one out of range."""
    if indices is None:
        return list(range(n))
    if isinstance(indices, int):
        if not 0 < indices <= n:
            raise ValueError(f"last-{indices} outputs asked of {n}; use 1..{n}")
        return list(range(n - indices, n))
    out = sorted({i % n if -n <= i < n else _out_of_range(i, n) for i in indices})
    return out


def _out_of_range(i: int, n: int) -> int:
    raise ValueError(f"output index {i} out of range for {n} outputs (use -{n}..{n - 1})")
