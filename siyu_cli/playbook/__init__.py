"""The playbook format: a campaign written as YAML, validated into a model."""

from siyu_cli.playbook._load import DEFAULT_COHORT, CohortRun, LoadedPlaybook, read
from siyu_cli.playbook._model import EVENTS, Beat, Funnel, Hook, Playbook, Stage, WelcomeStep
from siyu_cli.playbook._tags import TagExpr, TagExprError
from siyu_cli.playbook._tags import parse as parse_tags

__all__ = [
    "DEFAULT_COHORT",
    "EVENTS",
    "Beat",
    "CohortRun",
    "Funnel",
    "Hook",
    "LoadedPlaybook",
    "Playbook",
    "Stage",
    "TagExpr",
    "TagExprError",
    "WelcomeStep",
    "parse_tags",
    "read",
]
