"""Reading a spreadsheet export as a stream of rows: CSV in UTF-8 / UTF-8 BOM / GB18030, or XLSX.

Nothing here holds more than one row (plus the decoder's buffer) in memory.
"""

from __future__ import annotations

import codecs
import csv
import io
import sys
import warnings
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from itertools import chain, islice
from pathlib import Path
from typing import Any, BinaryIO

from siyu_cli.errors import SiyuError, UsageError

SAMPLE_BYTES = 256 * 1024
CHUNK_BYTES = 4 * 1024 * 1024
HEADER_SCAN = 20  # rows looked at for the header: title rows and notes above it
PROGRESS_EVERY = 4096
Progress = Callable[[int, int], None]

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class Source:
    """An open table: its header (stripped of whitespace and BOM) and its rows numbered as a spreadsheet shows them."""

    def __init__(
        self,
        path: Path,
        progress: Progress | None = None,
        *,
        encoding: str | None = None,
        sheet: str | int | None = None,
        header_row: int | None = None,
        known: Collection[str] = (),
    ) -> None:
        self.path = path
        self.progress = progress
        self.encoding = ""
        self.sheet = ""
        self.sheets: list[str] = []
        self.kind = "xlsx" if path.suffix.lower() in (".xlsx", ".xlsm") else "csv"
        self.header_row = 1
        self._stack = ExitStack()
        self.header: list[str] = []
        self._rows: Iterator[list[Any]] = iter(())
        self._tick: Callable[[int], tuple[int, int]] = lambda row: (row, 0)
        self._known = {clean_header(name) for name in known}
        try:
            if self.kind == "xlsx":
                if encoding:
                    raise UsageError(f"{path}: --encoding is for CSV files; an XLSX workbook has none")
                self._open_xlsx(sheet, header_row)
            else:
                if sheet is not None:
                    raise UsageError(f"{path}: --sheet is for XLSX workbooks; a CSV file has one table")
                self._open_csv(encoding, header_row)
        except BaseException:
            self._stack.close()
            raise

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def rows(self) -> Iterator[tuple[int, list[Any]]]:
        """(row number, cells) after the header, numbered as the spreadsheet shows them; blank rows are skipped but keep their numbers."""
        rowno = self.header_row
        progress, tick = self.progress, self._tick
        try:
            for cells in self._rows:
                rowno += 1
                if progress is not None and rowno % PROGRESS_EVERY == 0:
                    progress(*tick(rowno))
                if cells and (cells[0] or any(cell is not None and cell != "" for cell in cells)):
                    yield rowno, cells
        except UnicodeDecodeError:
            raise SiyuError(
                f"{self.path}: not valid {self.encoding} after row {rowno}; the file mixes encodings",
                hint="pass --encoding NAME, or save it again as CSV UTF-8 (Excel: 'CSV UTF-8') or as XLSX",
            ) from None
        except csv.Error as exc:
            raise SiyuError(f"{self.path}: row {rowno + 1}: cannot read CSV: {exc}", hint="check the quoting of that row") from None
        if progress is not None:
            done, total = tick(rowno)
            progress(total or done, total or done)

    def _open_csv(self, encoding: str | None, header_row: int | None) -> None:
        if not self.path.exists():
            raise SiyuError(f"{self.path}: no such file")
        try:
            raw = self._stack.enter_context(self.path.open("rb"))
        except OSError as exc:
            raise SiyuError(f"{self.path}: cannot open: {exc.strerror}") from None
        if not raw.seekable():
            # The encoding is decided from the whole file before its rows are read, so the file is read twice.
            raise SiyuError(f"{self.path}: a pipe or stream cannot be imported, only a file", hint="save it to a file first, then import that file")
        sample = raw.read(SAMPLE_BYTES)
        self.encoding = _named(encoding, self.path) if encoding else _detect(sample, raw, self.path)
        if self.encoding == "utf-8-sig" and not sample.startswith(codecs.BOM_UTF8):
            self.encoding = "utf-8"
        raw.seek(0)
        total = self.path.stat().st_size
        text = self._stack.enter_context(io.TextIOWrapper(raw, encoding=self.encoding, newline=""))
        first = sample[:4096].split(b"\n", 1)[0]
        delimiter = "\t" if b"\t" in first and b"," not in first else ","
        reader = csv.reader(text, delimiter=delimiter)
        try:
            top = list(islice(reader, header_row or HEADER_SCAN))
        except UnicodeDecodeError:
            raise SiyuError(f"{self.path}: the first rows are not valid {self.encoding}", hint="pass --encoding, or save it again as CSV UTF-8 or as XLSX") from None
        except csv.Error as exc:
            raise SiyuError(f"{self.path}: cannot read CSV: {exc}", hint="check the quoting of the first rows") from None
        at = self._header_at(top, header_row)
        if at is None:
            raise SiyuError(f"{self.path}: the file is empty; the first row must name the columns")
        self.header = [clean_header(cell) for cell in top[at]]
        self.header_row = at + 1
        self._rows = chain(top[at + 1 :], reader)
        self._tick = lambda _row: (raw.tell(), total)

    def _open_xlsx(self, sheet: str | int | None, header_row: int | None) -> None:
        import zipfile

        from openpyxl import load_workbook

        if not self.path.exists():
            raise SiyuError(f"{self.path}: no such file")
        self._stack.enter_context(_quiet_openpyxl())
        try:
            book = load_workbook(self.path, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
            raise SiyuError(f"{self.path}: not a readable XLSX workbook: {exc}", hint="save it again from Excel, or export CSV") from None
        self._stack.callback(book.close)
        chosen = _sheet(book, sheet, self.path)
        self.sheet, self.sheets = chosen.title, list(book.sheetnames)
        self.encoding = "xlsx"
        total = chosen.max_row or 0
        rows = chosen.iter_rows(values_only=True)
        top = [list(row) for row in islice(rows, header_row or HEADER_SCAN)]
        at = self._header_at(top, header_row)
        if at is None:
            raise SiyuError(f"{self.path}: sheet {chosen.title!r} is empty; a row must name the columns", hint=f"the sheets are: {', '.join(book.sheetnames)}; pick one with --sheet")
        header = top[at]
        width = len(header)
        while width and (header[width - 1] is None or str(header[width - 1]).strip() == ""):
            width -= 1
        self.header = [clean_header("" if cell is None else str(cell)) for cell in header[:width]]
        self.header_row = at + 1
        self._rows = chain(top[at + 1 :], (list(row) for row in rows))
        self._tick = lambda row: (row, total)

    def _header_at(self, top: list[list[Any]], header_row: int | None) -> int | None:
        """The header's index among the first rows: the given row, else the first row naming the most known columns
        (title rows and notes above it name none), else the first of the fullest rows (a title row fills one cell),
        so a file no mapping knows is described by its header, not its title."""
        if header_row is not None:
            if len(top) < header_row:
                raise SiyuError(f"{self.path}: header row {header_row} is past the end of the table ({len(top)} rows)")
            return header_row - 1
        best, best_score = None, 0
        for i, row in enumerate(top):
            score = sum(1 for cell in row if cell is not None and clean_header(str(cell)) in self._known)
            if score > best_score:
                best, best_score = i, score
        if best is not None:
            return best
        filled = [sum(1 for cell in row if cell is not None and str(cell).strip()) for row in top]
        most = max(filled, default=0)
        return filled.index(most) if most else None


def clean_header(name: str) -> str:
    return name.replace("\ufeff", "").strip()


def _named(encoding: str, path: Path) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise UsageError(f"--encoding {encoding}: no such encoding", hint="e.g. --encoding gb18030, utf-8 or utf-8-sig") from None


def _detect(sample: bytes, raw: BinaryIO, path: Path) -> str:
    """UTF-8 (with or without BOM) when the whole file decodes as such, else GB18030 (a superset of GBK).

    UTF-8 is checked to the end of the file (a GBK export may start with pages of ASCII); GB18030
    takes what UTF-8 refused, and a file that is neither fails at the row where it stops decoding.
    """
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SiyuError(f"{path}: the file is UTF-16 ('Unicode text')", hint="save it as CSV UTF-8 or as XLSX, or pass --encoding utf-16")
    if _decodes(sample, raw, "utf-8-sig"):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("gb18030")().decode(sample, final=len(sample) < SAMPLE_BYTES)
    except UnicodeDecodeError:
        raise SiyuError(
            f"{path}: neither UTF-8 nor GBK/GB18030 text; is it a CSV file?",
            hint="pass --encoding NAME, save it as CSV UTF-8 (Excel: 'CSV UTF-8'), or pass the .xlsx workbook itself",
        ) from None
    return "gb18030"


def _decodes(sample: bytes, raw: BinaryIO, codec: str) -> bool:
    """Whether the whole file decodes: the sample, then the rest read in chunks (ASCII chunks skip the decoder)."""
    decoder = codecs.getincrementaldecoder(codec)()
    try:
        decoder.decode(sample)
        while chunk := raw.read(CHUNK_BYTES):
            if not chunk.isascii() or decoder.getstate()[0]:
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _sheet(book: Any, sheet: str | int | None, path: Path) -> Any:
    """The sheet named, or the Nth (from 1), or the first."""
    names = book.sheetnames
    if sheet is None:
        return book.worksheets[0]
    if isinstance(sheet, int) or str(sheet).isdigit():
        number = int(sheet)
        if not 1 <= number <= len(names):
            raise UsageError(f"{path}: --sheet {number}: the workbook has {len(names)} sheet(s): {', '.join(names)}")
        return book.worksheets[number - 1]
    if sheet not in names:
        raise UsageError(f"{path}: no sheet named {sheet!r}", hint=f"the sheets are: {', '.join(names)} (or give a number from 1)")
    return book[sheet]


@contextmanager
def _quiet_openpyxl() -> Iterator[None]:
    """openpyxl warns about styles and data validation that an import does not care about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="openpyxl")
        yield
