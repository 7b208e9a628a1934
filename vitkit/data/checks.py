"""Dataset check reports: what ``vitkit check-data`` prints and what training refuses to start on.

A check (``vitkit.data.coco_check.check_coco``, ``vitkit.data.imagefolder.check_image_folder``) returns a
``CheckReport`` of ``Problem``s, each with a severity, a stable code, where it is, what is wrong and how to fix it:

- ``error``: the data cannot be used as it is (training would crash or learn from corrupted targets); training
  refuses to start and ``check-data`` exits with status 1;
- ``warning``: vitkit repairs it (clips a box, drops a degenerate one, fills a missing ``area``) but the file is
  wrong and other tools may fail on it;
- ``note``: worth knowing, nothing to fix (non-contiguous category ids are remapped, images without objects kept).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from vitkit.data.errors import DataError

Severity = Literal["error", "warning", "note"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "note")


@dataclass(frozen=True)
class Problem:
    severity: Severity
    code: str  # stable name of the kind of problem, e.g. "annotation_missing_bbox"
    where: str  # e.g. "annotations[12] (id 13)"
    message: str
    fix: str


@dataclass
class CheckReport:
    """Problems found in one source (an annotation file, an image folder), with a one-line summary of it."""

    source: str
    summary: str = ""
    problems: list[Problem] = field(default_factory=list)

    def add(self, severity: Severity, code: str, where: str, message: str, fix: str) -> None:
        self.problems.append(Problem(severity, code, where, message, fix))

    def of(self, severity: Severity) -> list[Problem]:
        return [p for p in self.problems if p.severity == severity]

    @property
    def errors(self) -> list[Problem]:
        return self.of("error")

    @property
    def warnings(self) -> list[Problem]:
        return self.of("warning")

    @property
    def codes(self) -> set[str]:
        return {p.code for p in self.problems}

    def format(self, per_kind: int = 5) -> str:
        """Human-readable report: problems grouped by kind (the first ``per_kind`` of each), errors first, each kind
        followed by its fix; then the counts."""
        lines = [f"{self.source}: {self.summary}" if self.summary else str(self.source)]
        for severity in SEVERITIES:
            by_code: dict[str, list[Problem]] = {}
            for p in self.of(severity):
                by_code.setdefault(p.code, []).append(p)
            for problems in by_code.values():
                for p in problems[:per_kind]:
                    lines.append(f"  {severity}: {p.where}: {p.message}" if p.where else f"  {severity}: {p.message}")
                if len(problems) > per_kind:
                    lines.append(f"  {severity}: ... and {len(problems) - per_kind} more like this")
                lines.append(f"    fix: {problems[0].fix}")
        lines.append(f"  {self.counts()}")
        return "\n".join(lines)

    def counts(self) -> str:
        n = Counter(p.severity for p in self.problems)
        return f"{n['error']} error(s), {n['warning']} warning(s), {n['note']} note(s)"

    def raise_for_errors(self, hint: str = "") -> None:
        """``DataError`` listing the errors (first few of each kind, with fixes) when there are any."""
        errors = self.errors
        if not errors:
            return
        first = errors[0]
        raise DataError(f"{self.source} has {len(errors)} error(s) that would corrupt training; the first: "
                        f"{first.where + ': ' if first.where else ''}{first.message}",
                        f"{first.fix}; {hint or 'vitkit check-data lists every problem with its fix'}")
