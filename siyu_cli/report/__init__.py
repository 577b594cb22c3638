"""Measuring the campaign: the funnel against its targets, SOP execution, the HTML report, simulation."""

from siyu_cli.report._funnel import GROUPINGS, NONE, FunnelGroup, FunnelReport, GroupStage, StageResult, funnel, human_duration, require_funnel
from siyu_cli.report._html import funnel_svg, hook_svg, html_report, write_html
from siyu_cli.report._journeys import JourneyReport, journey_report, journeys_html
from siyu_cli.report._simulate import Simulation, parse_rates, simulate
from siyu_cli.report._sop import SopReport, SopRow, sop
from siyu_cli.report._stats import ZTest, two_proportion_z, wilson

__all__ = [
    "GROUPINGS",
    "NONE",
    "FunnelGroup",
    "FunnelReport",
    "GroupStage",
    "JourneyReport",
    "Simulation",
    "SopReport",
    "SopRow",
    "StageResult",
    "ZTest",
    "funnel",
    "funnel_svg",
    "hook_svg",
    "html_report",
    "journey_report",
    "journeys_html",
    "human_duration",
    "parse_rates",
    "require_funnel",
    "simulate",
    "sop",
    "two_proportion_z",
    "wilson",
    "write_html",
]
