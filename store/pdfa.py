"""PDF/A-2b documents for the office's letters and records: one way to start them, one way to finish them.

`document()` gives an A4 fpdf2 page set up for PDF/A-2b (DejaVu Sans embedded, the bundled ICC sRGB
profile as the GTS_PDFA1 output intent, XMP metadata with pdfaid:part 2 and conformance B, Polish as
the document language). `finish()` turns it into bytes, seals them with the office's PAdES seal when
one is configured (store/seal.py), and checks the structure of the result before anything is stored:
a letter that is not PDF/A-2b in structure is never written.

What `check()` proves is the structure a PDF/A-2b validator looks at first (XMP identification,
output intent with an embedded ICC profile, every font embedded, no encryption, a file identifier);
it is not a full ISO 19005-2 validation (that is veraPDF's job; docs/SECURITY.md, Letters).
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # fpdf costs ~0.4 s to import; only a letter needs it (see letters.render)
    from fpdf import FPDF

    from .seal import Seal

FONTS_DIR = Path(__file__).with_name("fonts")
FONT_REGULAR = FONTS_DIR / "DejaVuSans.ttf"
FONT_BOLD = FONTS_DIR / "DejaVuSans-Bold.ttf"
#: The ICC's sRGB v2 profile (store/color/LICENSE-sRGB2014.txt), the output intent of every document.
ICC_PROFILE = Path(__file__).with_name("color") / "sRGB2014.icc"
FONT_FAMILY = "DejaVu"
COMPLIANCE = "PDFA_2B"

_PDFAID = "http://www.aiim.org/pdfa/ns/id/"


class NotPdfA(Exception):
    """The finished bytes are not PDF/A-2b in structure (a bug, never the user's input)."""


def document(*, title: str, author: str, subject: str = "") -> "FPDF":
    """A new A4 PDF/A-2b document with DejaVu Sans (regular as "", bold as "B") and the sRGB output intent."""
    from fpdf import FPDF
    from fpdf.enums import OutputIntentSubType
    from fpdf.output import PDFICCProfile

    pdf = FPDF(format="A4", enforce_compliance=COMPLIANCE)
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.set_title(title)
    pdf.set_author(author)
    if subject:
        pdf.set_subject(subject)
    pdf.set_creator("CIM")
    pdf.set_producer("CIM (fpdf2)")
    pdf.set_lang("pl-PL")
    pdf.add_output_intent(
        OutputIntentSubType.PDFA,
        output_condition_identifier="sRGB IEC61966-2.1",
        output_condition="IEC 61966-2-1:1999",
        registry_name="http://www.color.org",
        dest_output_profile=PDFICCProfile(contents=ICC_PROFILE.read_bytes(), n=3, alternate="DeviceRGB"),
        info="sRGB2014 (International Color Consortium, v2)",
    )
    pdf.add_font(FONT_FAMILY, "", str(FONT_REGULAR))
    pdf.add_font(FONT_FAMILY, "B", str(FONT_BOLD))
    return pdf


def finish(pdf: "FPDF", *, seal: "Seal | None" = None, reason: str = "", location: str = "") -> bytes:
    """The document's bytes: sealed (PAdES) when `seal` is given, checked as PDF/A-2b in structure."""
    data = bytes(pdf.output())
    if seal is not None:
        from .seal import apply_seal

        data = apply_seal(data, seal, reason=reason, location=location)
    problems = check(data)
    if problems:
        raise NotPdfA("; ".join(problems))
    return data


@dataclass(frozen=True)
class Structure:
    """What `inspect` read from a PDF: the facts a PDF/A-2b check rests on."""

    encrypted: bool
    has_id: bool
    xmp: str | None
    pdfa_part: str | None
    pdfa_conformance: str | None
    output_intents: tuple[dict[str, Any], ...]
    fonts: tuple[dict[str, Any], ...]
    signatures: int


def inspect(data: bytes) -> Structure:
    """Read the PDF/A-relevant structure of `data` (with pyHanko's own PDF reader)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(data), strict=False)
    encrypted = bool(reader.encrypted) or "/Encrypt" in reader.trailer
    if encrypted:  # nothing further is readable without the key, and nothing further matters
        return Structure(
            encrypted=True,
            has_id="/ID" in reader.trailer,
            xmp=None,
            pdfa_part=None,
            pdfa_conformance=None,
            output_intents=(),
            fonts=(),
            signatures=0,
        )
    root = reader.root
    xmp = part = conformance = None
    if "/Metadata" in root:
        xmp = root["/Metadata"].data.decode("utf-8")
        part, conformance = _pdfaid(xmp)
    intents = []
    for oi in root.get("/OutputIntents", generic.ArrayObject()):
        oi = oi.get_object()
        profile = oi.get("/DestOutputProfile")
        icc = profile.get_object().data if profile is not None else b""
        intents.append(
            {
                "S": str(oi.get("/S")),
                "identifier": str(oi.get("/OutputConditionIdentifier", "")),
                "icc_bytes": len(icc),
                "icc_valid": icc[36:40] == b"acsp",
                "icc_colour_space": icc[16:20].decode("latin-1").strip(),
                "N": int(profile.get_object().get("/N", 0)) if profile is not None else 0,
            }
        )
    fonts: dict[int | str, dict[str, Any]] = {}

    def visit_resources(resources: Any, seen: set[int]) -> None:
        if resources is None:
            return
        resources = resources.get_object()
        for _, font_ref in resources.get("/Font", generic.DictionaryObject()).items():
            font = font_ref.get_object()
            key = font_ref.idnum if isinstance(font_ref, generic.IndirectObject) else str(font.get("/BaseFont"))
            descendants = [d.get_object() for d in font.get("/DescendantFonts", ())] or [font]
            embedded = all(_font_file(d) for d in descendants)
            fonts[key] = {
                "name": str(font.get("/BaseFont", "")).lstrip("/"),
                "subtype": str(font.get("/Subtype")),
                "embedded": embedded,
            }
        for _, xobj_ref in resources.get("/XObject", generic.DictionaryObject()).items():
            if isinstance(xobj_ref, generic.IndirectObject):
                if xobj_ref.idnum in seen:
                    continue
                seen.add(xobj_ref.idnum)
            xobj = xobj_ref.get_object()
            if xobj.get("/Subtype") == "/Form":
                visit_resources(xobj.get("/Resources"), seen)

    seen: set[int] = set()
    for page in _pages(reader):
        visit_resources(page.get("/Resources"), seen)
        for annot in page.get("/Annots", ()):
            ap = annot.get_object().get("/AP")
            if ap is not None and "/N" in ap:
                normal = ap["/N"]
                if hasattr(normal.get_object(), "data"):
                    visit_resources(normal.get_object().get("/Resources"), seen)
    acroform = root.get("/AcroForm")
    if acroform is not None:
        visit_resources(acroform.get_object().get("/DR"), seen)
    return Structure(
        encrypted=encrypted,
        has_id="/ID" in reader.trailer,
        xmp=xmp,
        pdfa_part=part,
        pdfa_conformance=conformance,
        output_intents=tuple(intents),
        fonts=tuple(fonts.values()),
        signatures=len(reader.embedded_signatures),
    )


def check(data: bytes) -> list[str]:
    """What keeps `data` from being PDF/A-2b in structure; empty when nothing does."""
    s = inspect(data)
    problems = []
    if s.encrypted:
        return ["the file is encrypted (PDF/A forbids encryption)"]
    if not s.has_id:
        problems.append("the trailer has no file identifier (/ID)")
    if s.xmp is None:
        problems.append("no XMP metadata stream in the catalog")
    elif (s.pdfa_part, s.pdfa_conformance) != ("2", "B"):
        problems.append(f"XMP identifies PDF/A part {s.pdfa_part!r} conformance {s.pdfa_conformance!r}, not 2/B")
    pdfa = [oi for oi in s.output_intents if oi["S"] == "/GTS_PDFA1"]
    if not pdfa:
        problems.append("no GTS_PDFA1 output intent")
    elif not all(oi["icc_valid"] and oi["icc_colour_space"] == "RGB" and oi["N"] == 3 for oi in pdfa):
        problems.append("the GTS_PDFA1 output intent has no embedded RGB ICC profile")
    if not s.fonts:
        problems.append("no font found (a letter has text)")
    for font in s.fonts:
        if not font["embedded"]:
            problems.append(f"font {font['name']} is not embedded")
    return problems


def _pages(reader: Any) -> list[Any]:
    out = []

    def walk(node: Any) -> None:
        node = node.get_object()
        if node.get("/Type") == "/Pages":
            for kid in node["/Kids"]:
                walk(kid)
        else:
            out.append(node)

    walk(reader.root["/Pages"])
    return out


def _font_file(font: Any) -> bool:
    descriptor = font.get("/FontDescriptor")
    if descriptor is None:
        return False
    descriptor = descriptor.get_object()
    return any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3"))


def _pdfaid(xmp: str) -> tuple[str | None, str | None]:
    """pdfaid:part and pdfaid:conformance from XMP, written as attributes or as elements."""
    try:
        tree = ET.fromstring(re.sub(r"<\?xpacket[^>]*\?>", "", xmp).strip())
    except ET.ParseError:
        return None, None
    part = conformance = None
    for el in tree.iter():
        part = part or el.attrib.get(f"{{{_PDFAID}}}part")
        conformance = conformance or el.attrib.get(f"{{{_PDFAID}}}conformance")
        if el.tag == f"{{{_PDFAID}}}part":
            part = (el.text or "").strip()
        elif el.tag == f"{{{_PDFAID}}}conformance":
            conformance = (el.text or "").strip()
    return part, conformance
