"""Reading a spreadsheet export as a stream of rows: CSV in UTF-8 / UTF-8 BOM / GB18030, or XLSX.

Nothing here holds more than one row (plus the decoder's buffer) in memory.
"""

from __future__ import annotations

import codecs
import csv
import io
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from siyu_cli.errors import SiyuError

SAMPLE_BYTES = 256 * 1024
PROGRESS_EVERY = 4096
Progress = Callable[[int, int], None]

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class Source:
    """An open table: its header (stripped of whitespace and BOM) and its rows numbered as a spreadsheet shows them."""

    def __init__(self, path: Path, progress: Progress | None = None) -> None:
        self.path = path
        self.progress = progress
        self.encoding = ""
        self.kind = "xlsx" if path.suffix.lower() in (".xlsx", ".xlsm") else "csv"
        self._stack = ExitStack()
        self.header: list[str] = []
        self._rows: Iterator[list[Any]] = iter(())
        self._tick: Callable[[int], tuple[int, int]] = lambda row: (row, 0)
        try:
            if self.kind == "xlsx":
                self._open_xlsx()
            else:
                self._open_csv()
        except BaseException:
            self._stack.close()
            raise

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def rows(self) -> Iterator[tuple[int, list[Any]]]:
        """(row number, cells); the header is row 1, blank rows are skipped but keep their numbers."""
        rowno = 1
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
                hint="save it again as CSV UTF-8 (Excel: 'CSV UTF-8') or as XLSX",
            ) from None
        except csv.Error as exc:
            raise SiyuError(f"{self.path}: row {rowno + 1}: cannot read CSV: {exc}", hint="check the quoting of that row") from None
        if progress is not None:
            done, total = tick(rowno)
            progress(total or done, total or done)

    def _open_csv(self) -> None:
        if not self.path.exists():
            raise SiyuError(f"{self.path}: no such file")
        try:
            raw = self._stack.enter_context(self.path.open("rb"))
        except OSError as exc:
            raise SiyuError(f"{self.path}: cannot open: {exc.strerror}") from None
        sample = raw.read(SAMPLE_BYTES)
        self.encoding = _detect(sample, self.path)
        if self.encoding == "utf-8-sig" and not sample.startswith(codecs.BOM_UTF8):
            self.encoding = "utf-8"
        raw.seek(0)
        total = self.path.stat().st_size
        text = self._stack.enter_context(io.TextIOWrapper(raw, encoding=self.encoding, newline=""))
        first = sample[:4096].split(b"\n", 1)[0]
        delimiter = "\t" if b"\t" in first and b"," not in first else ","
        reader = csv.reader(text, delimiter=delimiter)
        try:
            header = next(reader, None)
        except UnicodeDecodeError:
            raise SiyuError(f"{self.path}: the header row is not valid {self.encoding}", hint="save it again as CSV UTF-8 or as XLSX") from None
        if header is None:
            raise SiyuError(f"{self.path}: the file is empty; the first row must name the columns")
        self.header = [clean_header(cell) for cell in header]
        self._rows = reader
        self._tick = lambda _row: (raw.tell(), total)

    def _open_xlsx(self) -> None:
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
        sheet = book.worksheets[0]
        self.encoding = "xlsx"
        total = sheet.max_row or 0
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise SiyuError(f"{self.path}: the first sheet is empty; its first row must name the columns")
        width = len(header)
        while width and (header[width - 1] is None or str(header[width - 1]).strip() == ""):
            width -= 1
        self.header = [clean_header("" if cell is None else str(cell)) for cell in header[:width]]
        self._rows = (list(row) for row in rows)
        self._tick = lambda row: (row, total)


def clean_header(name: str) -> str:
    return name.replace("\ufeff", "").strip()


def _detect(sample: bytes, path: Path) -> str:
    """UTF-8 (with or without BOM) when the sample decodes as such, else GB18030 (a superset of GBK)."""
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SiyuError(f"{path}: the file is UTF-16 ('Unicode text')", hint="save it as CSV UTF-8 or as XLSX")
    for codec in ("utf-8-sig", "gb18030"):
        try:
            codecs.getincrementaldecoder(codec)().decode(sample, final=len(sample) < SAMPLE_BYTES)
        except UnicodeDecodeError:
            continue
        return codec
    raise SiyuError(
        f"{path}: neither UTF-8 nor GBK/GB18030 text; is it a CSV file?",
        hint="save it as CSV UTF-8 (Excel: 'CSV UTF-8'), or pass the .xlsx workbook itself",
    )


@contextmanager
def _quiet_openpyxl() -> Iterator[None]:
    """openpyxl warns about styles and data validation that an import does not care about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="openpyxl")
        yield
