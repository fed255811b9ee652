"""The batch tool's file formats: plain text, JSONL, TSV and CSV, read whole and written back whole.

A format turns the input into records, each holding one segment to translate, and renders the same
records with the translation added. Records are never added, merged or dropped, so order and record
count survive by construction; a blank or failed segment still renders (empty, or the failure marker).
Everything is checked while reading, before any model is loaded, so a bad input costs nothing and leaves
nothing behind.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from translator.errors import InputError

FORMATS = ("text", "jsonl", "tsv", "csv")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".tsv": "tsv", ".tab": "tsv", ".csv": "csv"}
# Anything some reader (str.splitlines, editors, spreadsheets) takes as a line end: one inside a
# translation would break the one-record-per-line alignment of the output.
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


@dataclass(frozen=True)
class FormatOptions:
    format: str = "auto"  # one of FORMATS, or auto: from the file's suffix (stdin: text)
    field: str = "src"  # the JSONL key or TSV/CSV column holding the source
    output_field: str = "translation"  # the JSONL key or TSV/CSV column the translation goes into
    encoding: str | None = None  # None: UTF-8, with or without a byte-order mark


@dataclass(frozen=True)
class Segment:
    index: int  # position among the input's records
    line: int  # 1-based line where the record starts, for messages and the trace
    text: str  # what to translate; blank for a blank record


@dataclass(frozen=True)
class Translated:
    """What goes back into a record."""

    text: str  # the translation; "" for a blank or failed segment
    error: str | None = None  # why the segment failed


class Document(ABC):
    segments: list[Segment]

    @abstractmethod
    def render(self, outputs: Sequence[Translated], failed_marker: str = "") -> str:
        """The input's records in order, each with its translation added."""


def one_line(text: str) -> str:
    return _LINE_BREAKS.sub(" ", text)


def json_line(value: object) -> str:
    """JSON on one line for every reader: the line breaks json.dumps leaves raw (U+2028, U+2029, NEL) are
    escaped, since str.splitlines() and some editors would split a record on them."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("\x85", "\\u0085")


def _line_at(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of a byte offset."""
    start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - start + 1


def decode(data: bytes, name: str, encoding: str | None = None, *, choosable: bool = False) -> str:
    """The text of a file, or an error naming the first line that is not text in the expected encoding.

    ``choosable``: the user can name another encoding (``--encoding``), so the message says how."""
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InputError(f"unknown encoding {encoding!r}") from None
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            line, col = _line_at(data, exc.start)
            raise InputError(f"{name}: line {line} is not valid {encoding} (byte 0x{data[exc.start]:02x} "
                             f"at column {col})") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError(f"{name} is UTF-16 (it starts with a UTF-16 byte-order mark): convert it to UTF-8"
                         + (", or pass --encoding utf-16" if choosable else ""))
    if b"\0" in data:
        line, _ = _line_at(data, data.index(b"\0"))
        raise InputError(f"{name} looks like a binary file (NUL byte on line {line}), not text")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_at(data, exc.start)
        raise InputError(f"{name}: line {line} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {col})"
                         + ("; if the file is in another encoding, name it with --encoding (e.g. gb18030)"
                            if choosable else "")) from None


def split_lines(text: str) -> list[str]:
    """Lines ended by \\n (or \\r\\n), and nothing else: U+2028 and friends are text inside a segment."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def guess_format(name: str) -> str:
    return _SUFFIXES.get(PurePath(name).suffix.lower(), "text")


class TextDocument(Document):
    """One segment a line; a blank line stays a blank line."""

    def __init__(self, lines: list[str]):
        self.segments = [Segment(i, i + 1, line) for i, line in enumerate(lines)]

    def render(self, outputs: Sequence[Translated], failed_marker: str = "") -> str:
        return "".join(one_line(failed_marker if out.error else out.text) + "\n" for out in outputs)


class JsonlDocument(Document):
    """One JSON object a line; every other field is carried through untouched."""

    def __init__(self, lines: list[str], name: str, field: str, output_field: str):
        self.output_field = output_field
        self.records: list[dict | None] = []  # None: a blank line
        self.segments = []
        for i, line in enumerate(lines):
            record = _json_record(line, name, i + 1, field) if line.strip() else None
            self.records.append(record)
            self.segments.append(Segment(i, i + 1, record[field] if record is not None else ""))

    def render(self, outputs: Sequence[Translated], failed_marker: str = "") -> str:
        error_field = f"{self.output_field}_error"
        lines = []
        for record, out in zip(self.records, outputs, strict=True):
            if record is None:
                lines.append("")
                continue
            filled = {**record, self.output_field: None if out.error else out.text}
            filled.pop(error_field, None)
            if out.error:
                filled[error_field] = out.error
            lines.append(json_line(filled))
        return "".join(line + "\n" for line in lines)


def _json_record(line: str, name: str, number: int, field: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: line {number} is not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise InputError(f"{name}: line {number} is {_JSON_TYPES.get(type(record), 'not an object')}, "
                         "not a JSON object")
    if field not in record:
        fields = ", ".join(map(repr, record)) or "none"
        raise InputError(f"{name}: line {number} has no field {field!r} (its fields: {fields}); "
                         "name the source field with --field")
    if not isinstance(record[field], str):
        raise InputError(f"{name}: line {number}: field {field!r} is {_JSON_TYPES.get(type(record[field]), 'not text')}, "
                         "not a string")
    return record


class TableDocument(Document):
    """TSV or CSV with a header row: the source is a named column, the translation a column added (or
    replaced, when the header already has it)."""

    def __init__(self, rows: list[tuple[int, list[str]]], name: str, field: str, output_field: str, kind: str):
        if not rows:
            raise InputError(f"{name} is empty: a {kind.upper()} input needs a header row naming its columns")
        self.kind = kind
        self.header = rows[0][1]
        width = len(self.header)
        if field not in self.header:
            columns = ", ".join(map(repr, self.header))
            raise InputError(f"{name} has no column {field!r} (its columns: {columns}); "
                             "name the source column with --field")
        source = self.header.index(field)
        if output_field in self.header:
            self.target = self.header.index(output_field)
        else:
            self.target = len(self.header)
            self.header = [*self.header, output_field]
        self.rows: list[list[str]] = []
        self.segments = []
        for i, (line, row) in enumerate(rows[1:]):
            if row in ([], [""]):
                row = []
            elif len(row) > width:
                raise InputError(f"{name}: line {line} has {len(row)} cells but the header has {width}")
            self.rows.append(row)
            self.segments.append(Segment(i, line, row[source] if source < len(row) else ""))

    def render(self, outputs: Sequence[Translated], failed_marker: str = "") -> str:
        buffer = io.StringIO()
        if self.kind == "csv":
            writer = csv.writer(buffer, lineterminator="\n")
            write = writer.writerow
        else:
            def write(cells: list[str]) -> None:
                buffer.write("\t".join(cells) + "\n")
        write(self.header)
        for row, out in zip(self.rows, outputs, strict=True):
            if not row:
                buffer.write("\n")
                continue
            cells = row + [""] * (len(self.header) - len(row))
            cells[self.target] = one_line(failed_marker if out.error else out.text).replace("\t", " ")
            write(cells)
        return buffer.getvalue()


def _csv_rows(text: str, name: str) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows, start = [], 1
    try:
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(f"{name}: line {start} is not valid CSV ({exc})") from None
    return rows


def read_document(data: bytes, name: str, options: FormatOptions) -> Document:
    """Parse a whole input, refusing it with a message naming the offending line."""
    fmt = guess_format(name) if options.format == "auto" else options.format
    text = decode(data, name, options.encoding, choosable=True)
    if fmt == "csv":
        return TableDocument(_csv_rows(text, name), name, options.field, options.output_field, "csv")
    lines = split_lines(text)
    if fmt == "tsv":
        rows = [(i + 1, line.split("\t")) for i, line in enumerate(lines)]
        return TableDocument(rows, name, options.field, options.output_field, "tsv")
    if fmt == "jsonl":
        return JsonlDocument(lines, name, options.field, options.output_field)
    return TextDocument(lines)
