"""Rendering drafts: sandboxed Jinja, the template context, and occurrences expanded per target."""

from siyu_cli.render._context import SAMPLE_CONTACT, ContextBuilder
from siyu_cli.render._drafts import NOT_FRIEND, Draft, Planner, assign_variant, draft_id
from siyu_cli.render._render import Renderer, search_path

__all__ = ["NOT_FRIEND", "SAMPLE_CONTACT", "ContextBuilder", "Draft", "Planner", "Renderer", "assign_variant", "draft_id", "search_path"]
