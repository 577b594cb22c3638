"""Checking a playbook before it reaches a single customer: errors, then lint warnings."""

from siyu_cli.check._check import CheckResult, check_file, quiet_window, renamed

__all__ = ["CheckResult", "check_file", "quiet_window", "renamed"]
