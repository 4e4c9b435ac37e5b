"""Files -> Documents: one loader per format, and the folder walk that picks the files.

Every loader returns plain text in which headings are Markdown ATX lines (``## Title``), whatever
the source format, so the chunker has one structure to follow. A file that cannot be used raises
``InputError`` whose message is the reason shown in the ingest summary; the batch goes on.

A file is hostile input: loaders keep to `ingest.file_limits.FileLimits` (its bytes, the bytes a
DOCX inflates to, JSON nesting, the characters of text it yields), and whatever a parser raises
on a broken file becomes an ``InputError`` naming the file's kind. The time and memory a file may
take are bounded where it is read, in a worker process (`ingest.bounded`).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.file_limits import (
    FileLimits,
    TextBudget,
    check_inflated,
    json_depth_over,
    valid_text,
)
from rag.errors import InputError
from rag.types import Document

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*\n", re.S)
# No lazy group before an optional tail: `(.+?)[ \t#]*$` backtracks quadratically on a long line
# of "# # # ...", so the closing hashes are stripped in Python instead.
_ATX_HEADING = re.compile(r"^#{1,6}[ \t]+(.+)$", re.M)


_RST_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}[ \t]*$")


@dataclass(frozen=True)
class SourceFile:
    """A file picked for ingestion. ``doc_id`` is its path relative to the folder given."""

    path: Path
    doc_id: str
    #: The ingested folder it was found in (None for a file named directly): what pruning scans.
    root: Path | None = None


def discover(
    paths: Sequence[Path],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    skip: Path | None = None,
    id_prefix: str = "",
) -> list[SourceFile]:
    """Files named directly plus, recursively, the files of named folders.

    Globs match the path relative to the folder (``*.md``, ``policies/*``); hidden files and
    folders are skipped, and so is ``skip`` (the index folder, when it lies inside a corpus).
    A path that does not exist is an error before any work is done. Document ids are the
    relative path (a file's name, for a file named directly) after ``id_prefix``.
    """
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise InputError(f"no such file or folder: {', '.join(missing)}")
    skip_resolved = skip.resolve() if skip is not None else None
    found: list[SourceFile] = []
    for given in paths:
        path = Path(given).resolve()
        if path.is_file():
            found.append(SourceFile(path=path, doc_id=id_prefix + path.name))
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            here = Path(dirpath)
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not d.startswith(".") and (here / d).resolve() != skip_resolved
            )
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                rel = (here / name).relative_to(path).as_posix()
                if _selected(rel, include, exclude):
                    found.append(SourceFile(path=here / name, doc_id=id_prefix + rel, root=path))
    return found


def _selected(rel: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]

    def hit(globs: Sequence[str]) -> bool:
        return any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(name, g) for g in globs)

    return (not include or hit(include)) and not hit(exclude)


# -- reading bytes ---------------------------------------------------------------------------------


def read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(
                f"oversized: {size:,} bytes (limit {max_bytes:,}; raise RAG_MAX_FILE_BYTES)"
            )
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"unreadable: {error.strerror or error}") from None
    if not data.strip():
        raise InputError("empty file")
    return data


def decode_text(data: bytes) -> str:
    """Strict UTF-8 (a BOM is dropped); binary and other encodings are refused with the reason."""
    if b"\x00" in data[:8192]:
        raise InputError("binary file (not text)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(
            f"not UTF-8: byte 0x{data[error.start]:02x} at offset {error.start}; "
            "convert the file to UTF-8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _require_text(text: str) -> str:
    if not text.strip():
        raise InputError("empty: no text in the file")
    return text


def heading_title(line_rest: str) -> str:
    """The title of an ATX heading from what follows its opening hashes: the closing hashes and
    blanks dropped (all of it, if that leaves nothing, was the title's first character)."""
    return line_rest.rstrip(" \t#") or line_rest[:1]


def _first_heading(text: str) -> str | None:
    match = _ATX_HEADING.search(text)
    return heading_title(match.group(1)).strip() if match else None


def _document(file: SourceFile, text: str, title: str | None, **metadata: Any) -> Document:
    return Document(
        id=file.doc_id,
        source=str(file.path),
        title=valid_text(title or _first_heading(text) or file.path.stem),
        text=_require_text(valid_text(text)),
        metadata=metadata,
    )


# -- one loader per format -------------------------------------------------------------------------


def load_markdown(file: SourceFile, data: bytes, limits: FileLimits) -> list[Document]:
    text = decode_text(data)
    meta: dict[str, str] = {}
    front = _FRONT_MATTER.match(text)
    if front:
        for line in front.group(1).splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip():
                meta[key.strip()] = value.strip().strip("\"'")
        text = text[front.end() :]
    return [_document(file, text, meta.get("title"), format="markdown")]


def load_text(file: SourceFile, data: bytes, limits: FileLimits) -> list[Document]:
    return [_document(file, decode_text(data), None, format="text")]


def load_rst(file: SourceFile, data: bytes, limits: FileLimits) -> list[Document]:
    """reStructuredText with its section titles rewritten as ``#`` headings (level by style)."""
    lines = decode_text(data).split("\n")
    styles: list[str] = []
    out: list[str] = []
    i = 0
    while i < len(lines):
        over = _RST_ADORNMENT.match(lines[i])
        # Overlined title: adornment, title, adornment.
        if over and i + 2 < len(lines) and lines[i + 1].strip() and lines[i + 2] == lines[i]:
            style, title, i = "over" + lines[i][0], lines[i + 1].strip(), i + 3
        elif (
            i + 1 < len(lines)
            and lines[i].strip()
            and not _RST_ADORNMENT.match(lines[i])
            and (under := _RST_ADORNMENT.match(lines[i + 1]))
            and len(lines[i + 1].rstrip()) >= len(lines[i].rstrip())
        ):
            style, title, i = under.group(1), lines[i].strip(), i + 2
        else:
            out.append(lines[i])
            i += 1
            continue
        if style not in styles:
            styles.append(style)
        out.append("#" * min(6, styles.index(style) + 1) + " " + title)
    return [_document(file, "\n".join(out), None, format="rst")]


_HTML_DROP = ("script", "style", "nav", "header", "footer", "aside", "noscript", "template", "form")
_HTML_BLOCKS = (
    "p", "div", "section", "article", "li", "tr", "pre", "blockquote", "table", "ul", "ol", "dl",
    "dt", "dd", "figure", "figcaption", "br", "hr",
)  # fmt: skip


def load_html(file: SourceFile, data: bytes, limits: FileLimits) -> list[Document]:
    """The main text of a page: no scripts, styles, navigation, headers, footers or asides."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data), "lxml")
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else None
    main = soup.find("main") or soup.find("article") or soup.body or soup
    return [_document(file, _tidy(_html_text(main)), title or None, format="html")]


_HTML_LINE_BLOCKS = frozenset({"li", "tr", "br", "dt", "dd"})
_HTML_HEADINGS = {f"h{level}": level for level in range(1, 7)}


def _html_text(root: Any) -> str:
    """The text under ``root`` with headings as ``#`` lines, blocks on their own lines and table
    cells joined by ``|``, in one pass over the tree.

    Iterative, with no edits to the tree: inserting separators before and after every block
    costs time in proportion to its depth, so a page of 100,000 nested ``<div>`` took minutes.
    """
    from bs4 import CData, NavigableString

    out: list[str] = []
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        if closing:
            out.append(" | " if node.name in ("td", "th") else "\n")
            continue
        if isinstance(node, NavigableString):
            if type(node) in (NavigableString, CData):  # not comments, doctypes, scripts
                out.append(str(node))
            continue
        name = node.name
        if name in _HTML_DROP:
            continue
        if name in _HTML_HEADINGS:
            text = node.get_text(" ", strip=True)
            out.append(f"\n\n{'#' * _HTML_HEADINGS[name]} {text}\n\n" if text else "")
            continue
        if name in _HTML_BLOCKS:
            out.append("\n" if name in _HTML_LINE_BLOCKS else "\n\n")
        if name in _HTML_BLOCKS or name in ("td", "th"):
            stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.contents))
    return "".join(out)


def _tidy(text: str) -> str:
    """Collapse the whitespace an HTML or DOCX tree leaves: single spaces, one blank line."""
    lines = [
        re.sub(r"[ \t\xa0]+", " ", line).strip().rstrip("|").strip() for line in text.split("\n")
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def load_pdf(file: SourceFile, data: bytes, limits: FileLimits) -> list[Document]:
    """Text page by page; ``metadata["page_starts"]`` maps offsets back to 1-based pages."""
    import io

    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise InputError("encrypted PDF: decrypt it first")
    budget = TextBudget(limits.max_chars)
    pages = [budget.take((page.extract_text() or "").strip()) for page in reader.pages]
    info_title = reader.metadata.title if reader.metadata else None
    if not any(pages):
        raise InputError("empty: the PDF has no extractable text (scanned images?)")
    starts: list[int] = []
    parts: list[str] = []
    offset = 0
    for text in pages:
        starts.append(offset)
        parts.append(text)
        offset += len(text) + 2
    return [
        _document(
            file,
            "\n\n".join(parts),
            str(info_title) if info_title else None,
            format="pdf",
            pages=len(pages),
            page_starts=starts,
        )
    ]


def load_docx(file: SourceFile, data: bytes, limits: FileLimits) -> list[Document]:
    """Paragraphs and tables in body order; ``Heading N`` and ``Title`` styles become headings."""
    import io

    import docx
    from docx.table import Table

    check_inflated(data, limits.max_inflated_bytes)
    document = docx.Document(io.BytesIO(data))
    blocks = list(document.iter_inner_content())
    # Under a Title paragraph, "Heading 1" is the second level.
    shift = int(any(_style(b) == "Title" for b in blocks if not isinstance(b, Table)))
    budget = TextBudget(limits.max_chars)
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Table):
            for row in block.rows:
                lines.append(budget.take(" | ".join(cell.text.strip() for cell in row.cells)))
            lines.append("")
            continue
        text = budget.take(block.text.strip())
        level = _docx_heading_level(_style(block), shift)
        lines.append(f"{'#' * level} {text}" if level and text else text)
        lines.append("")
    title = document.core_properties.title or None
    return [_document(file, _tidy("\n".join(lines)), title, format="docx")]


def _style(paragraph: Any) -> str:
    return paragraph.style.name if paragraph.style is not None else ""


def _docx_heading_level(style: str, shift: int) -> int:
    if style == "Title":
        return 1
    match = re.match(r"Heading (\d)", style)
    return min(6, int(match.group(1)) + shift) if match else 0


def load_json(
    file: SourceFile, data: bytes, limits: FileLimits, text_field: str = "text"
) -> list[Document]:
    """One document per record: a JSON list, a JSON object, or JSON Lines.

    Record ids are ``<file>#<record id>`` (the record's ``id`` field, else its 1-based number).
    """
    raw = decode_text(data)
    records: list[tuple[int, Any]] = []
    if file.path.suffix.lower() in (".jsonl", ".ndjson"):
        for number, line in enumerate(raw.split("\n"), start=1):
            if line.strip():
                records.append((number, _parse_json(line, f"line {number}", limits.max_depth)))
    else:
        parsed = _parse_json(raw, "file", limits.max_depth)
        items = parsed if isinstance(parsed, list) else [parsed]
        records = list(enumerate(items, start=1))
    budget = TextBudget(limits.max_chars)
    documents = []
    for number, record in records:
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            continue
        if not record[text_field].strip():
            continue
        record_id = valid_text(str(record.get("id", number)))
        metadata = {
            k: valid_text(v) if isinstance(v, str) else v
            for k, v in record.items()
            if k not in (text_field, "title") and isinstance(v, str | int | float | bool)
        }
        documents.append(
            Document(
                id=f"{file.doc_id}#{record_id}",
                source=str(file.path),
                title=valid_text(str(record.get("title") or f"{file.path.stem} #{record_id}")),
                text=valid_text(budget.take(record[text_field])),
                metadata={**metadata, "format": "json", "record": record_id},
            )
        )
    if not documents:
        raise InputError(
            f"empty: no record has a non-empty string field {text_field!r} "
            "(choose the field with --json-field)"
        )
    return documents


def _parse_json(text: str, where: str, max_depth: int) -> Any:
    if json_depth_over(text, max_depth):
        raise InputError(f"JSON nested more than {max_depth} levels deep ({where})")
    try:
        return json.loads(text)
    except ValueError as error:  # JSONDecodeError, and integers longer than Python converts
        detail = str(error).split("; use sys.set_int_max_str_digits()")[0]
        raise InputError(f"corrupt JSON ({where}): {detail}") from None


_LOADERS: dict[str, Callable[[SourceFile, bytes, FileLimits], list[Document]]] = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
    ".text": load_text,
    ".rst": load_rst,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
}
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
#: What a broken file of each kind is called in its reason.
_KINDS = {".pdf": "PDF", ".docx": "DOCX", ".html": "HTML", ".htm": "HTML"}


def load_file(
    file: SourceFile, *, json_field: str = "text", limits: FileLimits = FileLimits()
) -> list[Document]:
    """The documents in one file (several for JSON records); InputError says why not.

    Whatever a parser raises on a broken or hostile file (lxml, zipfile, pypdf, recursion,
    memory) is that file's failure, never the batch's.
    """
    data = read_bytes(file.path, limits.max_bytes)
    suffix = file.path.suffix.lower()
    kind = _KINDS.get(suffix, suffix.lstrip(".").upper() or "text")
    try:
        if suffix in JSON_SUFFIXES:
            documents = load_json(file, data, limits, json_field)
        else:
            # Unknown extensions are read as plain text; binary files are refused by decode_text.
            documents = _LOADERS.get(suffix, load_text)(file, data, limits)
    except InputError:
        raise
    except MemoryError:
        raise InputError(
            f"too large to read: this {kind} needs more memory than the per-file limit"
        ) from None
    except RecursionError:
        raise InputError(f"corrupt {kind}: nested too deeply to read") from None
    except Exception as error:
        detail = str(error).strip() or type(error).__name__
        raise InputError(f"corrupt {kind}: {detail[:300]}") from None
    TextBudget(limits.max_chars).count(sum(len(d.text) for d in documents))
    return documents
