"""Attachment previews in a real browser: a PDF's pages drawn by the vendored pdf.js and an
image, in the record page's dialog, under the pages' CSP.

An admin uploads a two-page PDF (written here by hand, so no PDF library is needed) and a
PNG on a new record: the fresh upload opens in the dialog at once; saved, the record page
opens the PDF with both pages drawn (pixels that are not all white), its name, page count
and download link, closes on Esc with the focus back on the link, and shows the image in
the same dialog; the edit page's widget opens it too. On a phone the dialog fills the
screen and nothing is wider than it. PDFs that need the vendored extras are drawn (Chinese
text in a font the file does not embed: the CMaps; a fax-coded scan: the JBIG2/CCITT
fallback), a file pdf.js cannot read says so, and a page without an attachment field
loads no preview. A console error, a script error or a CSP report (``conftest.Web``)
fails the test.
"""

from __future__ import annotations

import re
import struct
import zlib
from typing import Any

import pytest

from engine_forms.forms import create_app, create_form
from engine_forms.publishing import publish
from tests.frontend.conftest import Web, add_user
from tests.security_setup import SYSTEM

FORM = "/apps/docs/forms/contract"
CONTRACT = {"key": "contract", "name": "合同", "title_field": "title", "fields": [
    {"key": "title", "label": "标题", "type": "text"},
    {"key": "files", "label": "附件", "type": "attachment", "accept": [".pdf", "image/*"]}]}


def pdf_of(objects: list[bytes]) -> bytes:
    """A PDF file of ``objects`` (numbered from 1; the first is the catalogue)."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def stream(data: bytes, entries: bytes = b"") -> bytes:
    return b"<< %s /Length %d >>\nstream\n%s\nendstream" % (entries, len(data), data)


def page(contents: int, resources: bytes) -> bytes:
    return (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << %s >> "
            b"/Contents %d 0 R >>" % (resources, contents))


def pdf_bytes(pages: int = 2) -> bytes:
    """A PDF of ``pages`` A4 pages, each a blue block and "Page n" in Helvetica."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for n in range(1, pages + 1):
        objects.append(stream(b"0.1 0.4 0.9 rg 72 560 450 200 re f "
                              b"BT /F1 48 Tf 72 460 Td (Page %d) Tj ET" % n))
        objects.append(page(len(objects), b"/Font << /F1 3 0 R >>"))
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), pages)
    return pdf_of(objects)


def one_page(resources: bytes, content: bytes, *more: bytes) -> bytes:
    """A one-page PDF; ``more`` are objects 5, 6 … that ``resources`` may name."""
    return pdf_of([b"<< /Type /Catalog /Pages 2 0 R >>",
                   b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                   page(4, resources), stream(content), *more])


def chinese_pdf() -> bytes:
    """Chinese text in a CJK font the file does not embed (STSong-Light, UniGB-UCS2-H), as
    e-invoices often have: drawn only with the predefined CMaps (``vendor/pdfjs/cmaps``)."""
    text = "中文发票".encode("utf-16-be").hex().encode()
    return one_page(
        b"/Font << /F1 5 0 R >>", b"BT /F1 72 Tf 72 600 Td <%s> Tj ET" % text,
        b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H "
        b"/DescendantFonts [6 0 R] >>",
        b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /CIDSystemInfo "
        b"<< /Registry (Adobe) /Ordering (GB1) /Supplement 2 >> /FontDescriptor 7 0 R >>",
        b"<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox "
        b"[-25 -254 1000 880] /ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 "
        b"/StemV 93 >>")


def fax_pdf() -> bytes:
    """A scan in CCITT fax coding (as copiers make): decoded only by pdf.js's JavaScript
    fallback (``vendor/pdfjs/wasm/jbig2_nowasm_fallback.js``; no WebAssembly under the CSP).
    16 × 16 pixels, each row 8 white then 8 black (Group 3 one-dimensional codes)."""
    bits = ("10011" + "000101") * 16
    bits += "0" * (-len(bits) % 8)
    data = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return one_page(
        b"/XObject << /Im1 5 0 R >>", b"q 400 0 0 400 100 300 cm /Im1 Do Q",
        stream(data, b"/Type /XObject /Subtype /Image /Width 16 /Height 16 /ColorSpace "
                     b"/DeviceGray /BitsPerComponent 1 /Filter /CCITTFaxDecode "
                     b"/DecodeParms << /K 0 /Columns 16 /Rows 16 >>"))


def png_bytes(width: int = 64, height: int = 48) -> bytes:
    """A valid PNG: an orange picture."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\xff\x8c\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PDF = {"name": "合同扫描件.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes()}
PNG = {"name": "现场照片.png", "mimeType": "image/png", "buffer": png_bytes()}

# How many pixels of a canvas are not white (the page's background): drawn pages have many.
INKED = """canvas => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] < 240 || data[i + 1] < 240 || data[i + 2] < 240) { inked++; }
  }
  return inked;
}"""


@pytest.fixture
def contracts(db: Any) -> None:
    add_user(db, "admin.docs")
    with db.write() as s:
        create_app(s, key="docs", name="文档")
        create_form(s, app="docs", raw=CONTRACT)
        publish(s, app="docs", key="contract", actor=SYSTEM)


# htmx logs a live check that a newer one replaced (hx-sync "this:replace": two uploads at
# once) as two errors; that is the form working, not a fault of the preview.
REPLACED_CHECK = ("htmx:sendAbort", "htmx:afterRequest")


def watch_console(page: Any) -> list[str]:
    """The page's console errors (the ``web`` fixture itself collects CSP reports only)."""
    errors: list[str] = []

    def seen(message: Any) -> None:
        if message.type == "error" and not message.text.startswith(REPLACED_CHECK):
            errors.append(message.text)
    page.on("console", seen)
    return errors


def upload_both(page: Any) -> None:
    page.goto(f"{FORM}/new")
    page.fill("#f-title", "租赁合同")
    page.set_input_files("#f-files", [PDF, PNG])
    page.locator("#row-files a[data-preview]").nth(1).wait_for()


def expect_pdf(page: Any) -> None:
    """The open dialog shows the PDF: name, page count, download link, two drawn pages."""
    dialog = page.locator("dialog#preview")
    dialog.wait_for()
    assert page.inner_text("#preview-title") == "合同扫描件.pdf"
    page.wait_for_selector("#preview-meta:text-is('共 2 页')")
    assert re.fullmatch(r"/api/v1/apps/docs/forms/contract/attachments/\d+",
                        page.get_attribute("#preview-download", "href"))
    pages = dialog.locator("canvas.preview-page")
    assert pages.count() == 2
    for n in range(2):
        pages.nth(n).scroll_into_view_if_needed()  # drawn as they come into view
        dialog.locator(f"canvas.preview-page[data-page='{n + 1}'][data-drawn]").wait_for()
        assert pages.nth(n).evaluate(INKED) > 1000, f"page {n + 1} is blank"
    assert pages.nth(0).get_attribute("aria-label") == "第 1 页，共 2 页"


def test_a_pdf_and_an_image_open_in_the_preview_dialog(web: Web, contracts: None) -> None:
    page = web.signed_in("admin.docs")
    errors = watch_console(page)
    upload_both(page)
    page.locator("#row-files a[data-preview=pdf]").click()  # just uploaded
    expect_pdf(page)
    page.keyboard.press("Escape")
    page.locator("dialog#preview").wait_for(state="hidden")
    page.click("#save")
    page.wait_for_url(re.compile(r"/records/\d+\?msg=record_saved$"))
    record = re.search(r"/records/(\d+)", page.url)[1]

    link = page.locator("a.file").get_by_text("合同扫描件.pdf")  # the field's (the timeline
    assert link.get_attribute("data-preview") == "pdf"        # names the upload too)
    timeline = page.locator("#timeline-items").get_by_role("link", name="合同扫描件.pdf")
    assert timeline.get_attribute("data-preview") == "pdf"
    link.click()
    expect_pdf(page)
    assert page.get_by_role("dialog", name="合同扫描件.pdf").is_visible()  # labelled
    page.keyboard.press("Escape")
    page.locator("dialog#preview").wait_for(state="hidden")
    assert link.evaluate("link => document.activeElement === link"), "the focus is lost"
    assert page.locator("#preview-body canvas").count() == 0  # the document was let go

    page.locator("a.file").get_by_text("现场照片.png").click()
    image = page.locator("#preview-body img.preview-image")
    image.wait_for()
    assert image.get_attribute("alt") == "现场照片.png"
    assert image.evaluate("img => img.naturalWidth") == 64
    assert page.inner_text("#preview-meta") == "64 × 48"
    page.click("#preview [data-close-dialog]")
    page.locator("dialog#preview").wait_for(state="hidden")

    page.goto(f"{FORM}/records/{record}/edit")  # the edit widget's files open it too
    page.locator("#row-files a[data-preview=pdf]").click()
    expect_pdf(page)
    page.mouse.click(5, 5)  # outside the dialog (closedby="any")
    page.locator("dialog#preview").wait_for(state="hidden")
    assert errors == []


def test_the_preview_fits_a_phone(web: Web, contracts: None) -> None:
    page = web.signed_in("admin.docs", width=375, height=740)
    errors = watch_console(page)
    upload_both(page)
    page.click("#save")
    page.wait_for_url(re.compile(r"/records/\d+\?msg=record_saved$"))
    page.locator("a.file").get_by_text("合同扫描件.pdf").click()
    first = page.locator("canvas.preview-page[data-page='1'][data-drawn]")
    first.wait_for()
    box = page.locator("dialog#preview").bounding_box()
    assert box["x"] >= 0 and box["width"] <= 375, box
    assert first.bounding_box()["width"] <= 375
    body = page.locator("#preview-body")
    assert body.evaluate("b => b.scrollWidth <= b.clientWidth"), "the pages scroll sideways"
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.keyboard.press("Escape")
    page.locator("a.file").get_by_text("现场照片.png").click()
    page.locator("#preview-body img.preview-image").wait_for()
    assert body.evaluate("b => b.scrollWidth <= b.clientWidth")
    assert errors == []


def test_pages_without_attachments_load_no_preview(web: Web, contracts: None, db: Any) -> None:
    with db.write() as s:
        create_form(s, app="docs", raw={"key": "note", "name": "便签", "title_field": "text",
                                        "fields": [{"key": "text", "label": "内容",
                                                    "type": "text"}]})
        publish(s, app="docs", key="note", actor=SYSTEM)
    page = web.signed_in("admin.docs")
    page.goto("/apps/docs/forms/note/new")
    assert page.locator("script[src*='preview.js'], dialog#preview").count() == 0
    page.goto(f"{FORM}/new")
    assert page.locator("script[src*='preview.js']").count() == 1


@pytest.mark.parametrize(("name", "content"), [("发票.pdf", chinese_pdf()),
                                               ("扫描件.pdf", fax_pdf())],
                         ids=["chinese-text", "fax-scan"])
def test_pdfs_that_need_the_vendored_extras_are_drawn(web: Web, contracts: None, name: str,
                                                      content: bytes) -> None:
    page = web.signed_in("admin.docs")
    errors = watch_console(page)
    page.goto(f"{FORM}/new")
    page.set_input_files("#f-files", [{"name": name, "mimeType": "application/pdf",
                                       "buffer": content}])
    page.locator("#row-files a[data-preview=pdf]").click()
    drawn = page.locator("canvas.preview-page[data-page='1'][data-drawn]")
    drawn.wait_for()
    assert drawn.evaluate(INKED) > 1000, "the page is blank"
    assert errors == []


def test_a_file_that_cannot_be_drawn_says_so(web: Web, contracts: None) -> None:
    page = web.signed_in("admin.docs")
    page.goto(f"{FORM}/new")
    page.set_input_files("#f-files", [{"name": "坏文件.pdf", "mimeType": "application/pdf",
                                       "buffer": b"%PDF-1.4\n% not really\n%%EOF\n"}])
    page.locator("#row-files a[data-preview=pdf]").click()
    page.wait_for_selector("#preview-meta.error")
    assert "请下载后查看" in page.inner_text("#preview-meta")
    assert page.locator("#preview-body canvas").count() == 0
    assert page.get_attribute("#preview-download", "download") == "坏文件.pdf"
