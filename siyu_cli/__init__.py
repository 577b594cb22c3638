"""siyu: 私域 (private-domain) campaigns as code.

The public API: read and check a playbook, preview a day, run passes, and the typed errors.
"""

from siyu_cli._version import __version__
from siyu_cli.errors import (
    DeliveryError,
    ImportRejected,
    LockHeld,
    PlaybookInvalid,
    PlaybookNotFound,
    Problem,
    SiyuError,
    StoreError,
    TemplateFailure,
    UsageError,
)

__all__ = [
    "DeliveryError",
    "ImportRejected",
    "LockHeld",
    "PlaybookInvalid",
    "PlaybookNotFound",
    "Problem",
    "SiyuError",
    "StoreError",
    "TemplateFailure",
    "UsageError",
    "__version__",
]
