"""The ledger: the truth about every draft, shared safely by any number of processes."""

from siyu_cli.ledger._cursor import Cursor, PlanCursor
from siyu_cli.ledger._ledger import DRAFT_COLUMNS, HOST, Ledger, Run, pid_alive

__all__ = ["Cursor", "PlanCursor", "DRAFT_COLUMNS", "HOST", "Ledger", "Run", "pid_alive"]
