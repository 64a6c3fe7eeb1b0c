"""What a run of ``rag eval`` gives back: shared by the runner that makes it and the report that
writes it (neither imports the other for it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.evaluation.regression import PairedChange


@dataclass
class EvalResult:
    results: dict[str, Any]
    gate_failures: list[str]
    changes: list[PairedChange] = field(default_factory=list)
    report_dir: Path | None = None
    baseline: dict[str, Any] | None = None
    rule_failures: list[str] = field(default_factory=list)  # thresholds.toml and the gold set's validity

    @property
    def passed(self) -> bool:
        return not self.gate_failures
