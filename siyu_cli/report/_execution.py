"""SOP execution as a day × beat heatmap: of the send tasks handed to the front line, how many a staff member sent.

Each cell is SOP 执行率 as `siyu report sop` counts it: send tasks done ÷ send tasks handed out (a 300-customer
mass send is one task one staff member confirms; a draft without a task is its own). A task is handed out when a
recipient is (not skipped, not pending), done when a staff member sent it to any recipient (`done_by`: read back
from WeCom, or `siyu outbox done`); a task that failed or is in doubt is not done. Each cell's title gives its tasks
(and late ones) with the recipients they reached beside them and the drafts skipped, pending, failed or in doubt.
Welcome and journey steps fold into one column per hook or journey, so a phone can show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from siyu_cli.playbook import LoadedPlaybook
from siyu_cli.report._sop import SopReport, SopRow, TaskCounts

LOW_EXECUTION = 0.8  # a column executed below this is named under "what to look at next"


@dataclass
class Cell:
    """One day × column: its send tasks (what the rate counts) and its drafts (recipients) by outcome."""

    tasks: TaskCounts = field(default_factory=TaskCounts)
    due: int = 0
    skipped: int = 0
    pending: int = 0
    failed: int = 0
    unknown: int = 0

    def add(self, row: SopRow | Cell) -> None:
        self.due += row.due
        self.skipped += row.skipped_total if isinstance(row, SopRow) else row.skipped
        self.pending += row.pending
        self.failed += row.failed
        self.unknown += row.unknown
        if isinstance(row, Cell):
            self.tasks.add(row.tasks)

    @property
    def rate(self) -> float | None:
        """SOP 执行率 of the cell: send tasks done of those handed out."""
        return self.tasks.rate


@dataclass
class Column:
    key: str
    title: str
    total: Cell = field(default_factory=Cell)


@dataclass
class Execution:
    columns: list[Column]
    days: list[int]
    cells: dict[tuple[int, str], Cell]
    total: Cell

    def low(self) -> list[Column]:
        """Columns executed below LOW_EXECUTION, worst first."""
        found = [c for c in self.columns if c.total.rate is not None and c.total.rate < LOW_EXECUTION]
        return sorted(found, key=lambda c: (c.total.rate or 0.0, c.key))


def _column(playbook: LoadedPlaybook, beat: str, title: str) -> tuple[str, str]:
    """(key, title) of a ledger beat: playbook beats as they are, welcome and journey steps per route."""
    kind, _, rest = beat.partition(":")
    route = rest.partition(":")[0]
    if kind == "welcome":
        hook = next((h for h in playbook.model.hooks if h.id == route), None)
        return f"welcome:{route}", f"欢迎语 {(hook.title or hook.id) if hook else route}"
    if kind == "journey":
        journey = next((j for j in playbook.model.journeys if j.id == route), None)
        return f"journey:{route}", (journey.title or journey.id) if journey else route
    return beat, title


def execution(report: SopReport, tasks: dict[tuple[int | None, str], TaskCounts], playbook: LoadedPlaybook) -> Execution:
    """Fold the SOP rows (day, beat, persona) and the send tasks (day, beat: siyu_cli.report._sop.task_cells) into
    day × column cells, in the SOP's order."""
    columns: dict[str, Column] = {}
    cells: dict[tuple[int, str], Cell] = {}
    for row in report.rows:
        if row.day is None:
            continue
        key, title = _column(playbook, row.beat, row.title)
        columns.setdefault(key, Column(key, title))
        cells.setdefault((row.day, key), Cell()).add(row)
    for (day, beat), counts in tasks.items():
        if day is None:
            continue
        cells.setdefault((day, _column(playbook, beat, beat)[0]), Cell()).tasks.add(counts)
    total = Cell()
    for (_, key), cell in cells.items():
        columns[key].total.add(cell)
        total.add(cell)
    order = {b.id: i for i, b in enumerate(playbook.model.beats)}
    ordered = sorted(columns.values(), key=lambda c: (0 if c.key in order else 1 if c.key.startswith("welcome:") else 2, order.get(c.key, 0)))
    days = sorted({day for day, _ in cells})
    span = list(range(days[0], days[-1] + 1)) if days else []
    return Execution(ordered, span, cells, total)


SCALE = ((0.2, "#fecaca"), (0.5, "#fed7aa"), (0.8, "#fef08a"), (0.95, "#bbf7d0"), (1.01, "#4ade80"))


def _colour(rate: float) -> str:
    return next(colour for bound, colour in SCALE if rate < bound)


def _cell(cell: Cell | None, where: str) -> str:
    if cell is None or not cell.due:
        return '<td class="off"></td>'
    tasks = cell.tasks
    extra = [f"{n} {name}" for n, name in ((tasks.late, "late"), (tasks.time_unknown, "time unknown")) if n]
    tip = f"{where}: no send task handed out"
    if tasks.tasks:
        late = f" ({', '.join(extra)})" if extra else ""
        tip = f"{where}: {tasks.done} of {tasks.tasks} send tasks done{late} · {tasks.reached} of {tasks.recipients} recipients reached"
    drafts = [f"{n} {name}" for n, name in ((cell.skipped, "skipped"), (cell.pending, "pending"), (cell.failed, "failed"), (cell.unknown, "in doubt")) if n]
    tip += f" · drafts {', '.join(drafts)}" if drafts else ""
    counts = f'data-tasks="{tasks.tasks}" data-done="{tasks.done}" data-recipients="{tasks.recipients}" data-reached="{tasks.reached}"'
    rate = cell.rate
    if rate is None:
        return f'<td class="na" {counts} title="{escape(tip)}">–</td>'
    # Floored as report sop floors its rates: 999 of 1,000 is 99, never 100 while a task was not done.
    return f'<td data-rate="{rate:.3f}" {counts} style="background:{_colour(rate)}" title="{escape(tip)}">{tasks.done * 100 // tasks.tasks}</td>'


def heatmap_html(found: Execution) -> str:
    """A fixed-layout table as wide as its box: rows are days, columns beats, each cell SOP 执行率 in % (send tasks)."""
    if not found.columns:
        return '<p class="note" id="sop-heatmap">No drafts recorded yet: run <code>siyu run</code> first.</p>'
    head = '<tr><th class="day">day</th>' + "".join(f'<th data-column="{escape(c.key)}">{escape(c.title)}</th>' for c in found.columns) + "</tr>"
    rows = []
    for day in found.days:
        cells = "".join(_cell(found.cells.get((day, c.key)), f"day {day} · {c.title}") for c in found.columns)
        rows.append(f'<tr data-day="{day}"><th class="day">{day}</th>{cells}</tr>')
    totals = "".join(_cell(c.total, f"all days · {c.title}") for c in found.columns)
    rows.append(f'<tr class="all"><th class="day">all</th>{totals}</tr>')
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{label}</span>'
        for (_, colour), label in zip(SCALE, ("&lt;20%", "20–50%", "50–80%", "80–95%", "≥95%"), strict=True)
    )
    tasks = found.total.tasks
    rate = tasks.rate
    summary = (
        f'<p class="note" id="sop-rate">SOP 执行率 {"–" if rate is None else f"{tasks.done * 100 // tasks.tasks}%"}: {tasks.done:,} of {tasks.tasks:,} send tasks 任务 '
        f"handed to the front line were sent by a staff member, reaching {tasks.reached:,} of their {tasks.recipients:,} recipients. "
        "Each cell: send tasks done ÷ handed out, in %, as <code>siyu report sop</code> counts them (a mass send to 300 customers is one task; "
        "skipped drafts and drafts not yet due make none; a task that failed or is in doubt is not done); hover a cell for its tasks and recipients.</p>"
    )
    table = f'<table id="sop-heatmap" class="heat">{head}{"".join(rows)}</table>'
    return f'{summary}<div class="legend">{legend}</div>{table}'
