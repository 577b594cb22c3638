"""Getting drafts out: guardrails, preview, the runner, the service and the outputs.

Names are loaded on first use (PEP 562 `__getattr__`): a cron pass needs the runner, and
importing this package must not also pull in preview (and what it reads) or the service.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from siyu_cli.dispatch._outputs import Outgoing, Output, build_outputs
    from siyu_cli.dispatch._policy import Budget, Guard, Schedule
    from siyu_cli.dispatch._preview import PreviewItem, PreviewResult, preview
    from siyu_cli.dispatch._runner import PassSummary, Runner
    from siyu_cli.dispatch._service import run_fast, run_service

_WHERE = {
    "Budget": "_policy",
    "Guard": "_policy",
    "Outgoing": "_outputs",
    "Output": "_outputs",
    "PassSummary": "_runner",
    "PreviewItem": "_preview",
    "PreviewResult": "_preview",
    "Runner": "_runner",
    "Schedule": "_policy",
    "build_outputs": "_outputs",
    "preview": "_preview",
    "run_fast": "_service",
    "run_service": "_service",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Budget",
    "Guard",
    "Outgoing",
    "Output",
    "PassSummary",
    "PreviewItem",
    "PreviewResult",
    "Runner",
    "Schedule",
    "build_outputs",
    "preview",
    "run_fast",
    "run_service",
]
