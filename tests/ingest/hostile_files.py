"""Hostile files, built in the test: the ones an outside tester sent (issue 14), and their kin.

Each builder returns the bytes of a file that is small on the wire and costly, broken or
malicious once read. `HOSTILE` names them with the suffix they travel under and a fragment of the
reason a loader must give when it refuses one; `ACCEPTED` are odd but legitimate files that must
be read (quickly), not refused.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

MIB = 1 << 20


@cache
def plain_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Plain", level=1)
    document.add_paragraph("A short and ordinary paragraph.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_replacing(name: str, write: Callable[[zipfile.ZipFile, str], None]) -> bytes:
    """A copy of `plain_docx` whose member ``name`` is written by ``write`` instead."""
    source = zipfile.ZipFile(io.BytesIO(plain_docx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for info in source.infolist():
            if info.filename == name:
                write(target, name)
            else:
                target.writestr(info, source.read(info.filename))
    return out.getvalue()


def docx_bad_content_types() -> bytes:
    """`[Content_Types].xml` that is not XML (lxml's XMLSyntaxError was a 500)."""
    return docx_replacing("[Content_Types].xml", lambda z, n: z.writestr(n, "<Types><not xml"))


def _document_xml(paragraphs: int, size: int) -> Callable[[zipfile.ZipFile, str], None]:
    """word/document.xml with ``paragraphs`` paragraphs of ``size`` letters, streamed into the
    zip so the test never holds the inflated text."""
    head = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body>"
    )

    def write(archive: zipfile.ZipFile, name: str) -> None:
        with archive.open(name, "w", force_zip64=True) as member:
            member.write(head.encode())
            for _ in range(paragraphs):
                member.write(b"<w:p><w:r><w:t>")
                for _ in range(size // MIB):
                    member.write(b"a" * MIB)
                member.write(b"a" * (size % MIB) + b"</w:t></w:r></w:p>")
            member.write(b"</w:body></w:document>")

    return write


def docx_inflating_text_node() -> bytes:
    """~150 KB on the wire, one 150 MiB text node once inflated (+158 MB of server memory)."""
    return docx_replacing("word/document.xml", _document_xml(1, 150 * MIB))


def docx_megabyte_paragraphs() -> bytes:
    """~50 KB on the wire, 20 paragraphs of 1 MB: held the server's index for minutes."""
    return docx_replacing("word/document.xml", _document_xml(20, MIB))


def nested_json(depth: int = 10_000) -> bytes:
    return ("[" * depth + "]" * depth).encode()


def nested_jsonl(depth: int = 10_000) -> bytes:
    return ('{"text": "fine"}\n' + "[" * depth + "]" * depth + "\n").encode()


def long_integer_json(digits: int = 5_000) -> bytes:
    return ('{"text": "a number follows", "n": ' + "7" * digits + "}").encode()


def pdf_flate_bomb() -> bytes:
    """One page whose content stream inflates to 200 MiB of spaces (a few hundred KB deflated)."""
    squeezer = zlib.compressobj(9)
    packed = b"".join(squeezer.compress(b" " * MIB) for _ in range(200)) + squeezer.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(packed) + packed + b"\nendstream",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


def deep_html(depth: int = 100_000) -> bytes:
    nest = "<div>" * depth + "deep" + "</div>" * depth
    return f"<html><body>{nest}</body></html>".encode()


def slow_html(elements: int = 200_000) -> bytes:
    """Legitimate-looking HTML that takes a parser long to read (seconds to minutes)."""
    row = "<div><p>word and more words</p></div>"
    return ("<html><body>" + row * elements + "</body></html>").encode()


def long_text_md(chars: int = 5_000_001) -> bytes:
    return ("# Long\n\n" + "x" * chars + "\n").encode()


def hashes_heading_md(pairs: int = 800_000) -> bytes:
    """One heading line of 1.6 MB of ' #': a lazy heading regex backtracked for hours on it."""
    return ("# x" + " #" * pairs + "y\n\nBody text under it.\n").encode()


def surrogate_json() -> bytes:
    """JSON escapes that decode to lone UTF-16 surrogates (SQLite cannot store them)."""
    record = {"text": "warranty \ud800 policy", "title": "\udc00 odd", "id": "r\ud800"}
    return json.dumps([record]).encode()


@dataclass(frozen=True)
class HostileFile:
    name: str
    build: Callable[[], bytes]
    #: A fragment of the reason the file is refused with.
    reason: str


HOSTILE = [
    HostileFile("content-types.docx", docx_bad_content_types, "corrupt DOCX"),
    HostileFile("nested.json", nested_json, "nested more than 100 levels"),
    HostileFile("nested.jsonl", nested_jsonl, "nested more than 100 levels"),
    HostileFile("digits.json", long_integer_json, "Exceeds the limit (4300 digits)"),
    HostileFile("inflated.docx", docx_inflating_text_node, "inflates to 158,111,213 bytes"),
    HostileFile("paragraphs.docx", docx_megabyte_paragraphs, "too much text"),
    HostileFile("bomb.pdf", pdf_flate_bomb, "no extractable text"),
    HostileFile("long.md", long_text_md, "too much text"),
    HostileFile("binary.md", lambda: b"\x00\x01\x02 not text", "binary file"),
]
ACCEPTED = [
    HostileFile("deep.html", deep_html, ""),
    HostileFile("hashes.md", hashes_heading_md, ""),
    HostileFile("surrogates.json", surrogate_json, ""),
]
