"""Getting drafts out: guardrails, preview, the runner, the service and the outputs."""

from siyu_cli.dispatch._outputs import Outgoing, Output, build_outputs
from siyu_cli.dispatch._policy import Budget, Guard, Schedule
from siyu_cli.dispatch._preview import PreviewItem, PreviewResult, preview
from siyu_cli.dispatch._runner import PassSummary, Runner
from siyu_cli.dispatch._service import run_fast, run_service

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
