"""The playbook format: a campaign written as YAML, validated into a model."""

from siyu_cli.playbook._load import DEFAULT_COHORT, CohortRun, LoadedPlaybook, read
from siyu_cli.playbook._model import EVENTS, Beat, ExitCondition, Funnel, Hook, Journey, JourneyStep, Playbook, Rule, Stage, TargetOf, Trigger, Variant, WelcomeStep
from siyu_cli.playbook._tags import TagExpr, TagExprError
from siyu_cli.playbook._tags import parse as parse_tags

__all__ = [
    "DEFAULT_COHORT",
    "EVENTS",
    "Beat",
    "ExitCondition",
    "CohortRun",
    "Funnel",
    "Hook",
    "Journey",
    "JourneyStep",
    "LoadedPlaybook",
    "Playbook",
    "Rule",
    "Stage",
    "TagExpr",
    "TagExprError",
    "TargetOf",
    "Trigger",
    "Variant",
    "WelcomeStep",
    "parse_tags",
    "read",
]
