"""Getting drafts out: guardrails, preview, the runner and its outputs."""

from siyu_cli.dispatch._policy import Budget, Guard, Schedule
from siyu_cli.dispatch._preview import PreviewItem, PreviewResult, preview

__all__ = ["Budget", "Guard", "PreviewItem", "PreviewResult", "Schedule", "preview"]
