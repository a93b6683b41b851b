"""A PDF as it prints: its first page drawn by poppler (`pdftoppm`), the words of its text layer with their
boxes (`pdftotext -bbox`), and what Tesseract reads off the drawn page.

The text layer alone proves nothing about the paper: a glyph written into the wrong embedded font keeps its
character in the text layer and prints blank. So these helpers look at the pixels.

`server_fonts` sets the fonts the server has, for the renderer in this process (a fontconfig file of our
own): none at all, so the vendored fonts must carry everything; or a "Noto Sans Devanagari" with the Latin
digits and punctuation too, as Debian's fonts-noto-core installs it.

The tools come from poppler-utils, tesseract-ocr and tesseract-ocr-hin (.ci/run installs them); a missing
one fails the test under CI=true and skips it elsewhere.
"""

import html
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fontTools.merge import Merger
from fontTools.ttLib import TTFont

from app.pdf import STATIC

DPI = 200
INK = 128  # a grey level darker than this is ink
TOOLS = {"pdftoppm": "poppler-utils", "pdftotext": "poppler-utils", "tesseract": "tesseract-ocr"}
OCR_LANGUAGES = {"eng": "tesseract-ocr-eng", "hin": "tesseract-ocr-hin"}
WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>')


def require_tools() -> None:
    """Fail (CI) or skip (elsewhere) unless poppler and Tesseract with English and Hindi are installed."""
    missing = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    if shutil.which("tesseract"):
        listed = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True).stdout.split()
        missing += [package for language, package in OCR_LANGUAGES.items() if language not in listed]
    if missing:
        message = f"apt-get install {' '.join(missing)}: needed to look at the printed page"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


class Page:
    """The first page of a PDF as drawn at DPI (8-bit grey) and the words of its text layer."""

    def __init__(self, pdf: bytes, folder: Path):
        require_tools()
        source = folder / "page.pdf"
        source.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-r", str(DPI), "-gray", "-f", "1", "-l", "1", "-singlefile", source,
                        folder / "page"], check=True)
        self.image = folder / "page.pgm"
        header, self.pixels = _read_pgm(self.image.read_bytes())
        self.width, self.height = header
        layer = subprocess.run(["pdftotext", "-bbox", "-f", "1", "-l", "1", source, "-"], capture_output=True,
                               text=True, check=True).stdout
        scale = DPI / 72
        self.words = [(html.unescape(m[5]), tuple(round(float(v) * scale) for v in m.groups()[:4]))
                      for m in WORD.finditer(layer)]

    def inked(self, box: tuple[int, int, int, int]) -> bool:
        """Whether anything is drawn inside `box` (left, top, right, bottom, in pixels)."""
        left, top, right, bottom = self._on_page(box)
        return any(min(self.pixels[y * self.width + left:y * self.width + right]) < INK for y in range(top, bottom))

    def undrawn(self) -> list[str]:
        """The words the text layer holds that print nothing (a mark of no width, such as the reph of "र्श",
        is drawn over its neighbours: it has no box of its own to look in)."""
        return [word for word, box in self.words if box[2] > box[0] and not self.inked(box)]

    def blocks(self) -> list[tuple[int, int, int, int]]:
        """The boxes of the page's separate stretches of text (a table cell, a paragraph): words less than
        half a line apart go together; top to bottom, left to right."""
        found: list[tuple[int, int, int, int]] = []
        for _, (left, top, right, bottom) in self.words:
            margin = (bottom - top) // 4
            box = (left - margin, top - margin, right + margin, bottom + margin)
            while touching := [other for other in found if _overlap(other, box)]:
                found = [other for other in found if other not in touching]
                box = _union(box, *touching)
            found.append(box)
        return sorted(found)

    def read(self) -> list[str]:
        """What Tesseract (English and Hindi) reads in each stretch of text, without whitespace."""
        crops = [self._crop(n, box) for n, box in enumerate(self.blocks())]
        listing = self.image.with_name("blocks.txt")
        listing.write_text("".join(f"{crop}\n" for crop in crops))
        out = subprocess.run(["tesseract", listing, "-", "-l", "eng+hin", "--psm", "6"], capture_output=True,
                             text=True, check=True, env={**os.environ, "OMP_THREAD_LIMIT": "1"}).stdout
        return ["".join(text.split()) for text in out.split("\f")[:len(crops)]]

    def _crop(self, n: int, box: tuple[int, int, int, int]) -> Path:
        """The stretch of the page in `box` as an image file of its own."""
        left, top, right, bottom = self._on_page(box)
        rows = [self.pixels[y * self.width + left:y * self.width + right] for y in range(top, bottom)]
        crop = self.image.with_name(f"block-{n}.pgm")
        crop.write_bytes(b"P5 %d %d 255\n" % (right - left, len(rows)) + b"".join(rows))
        return crop


    def _on_page(self, box) -> tuple[int, int, int, int]:
        """`box` cut to the page, its right and bottom edges included."""
        return max(box[0], 0), max(box[1], 0), min(box[2] + 1, self.width), min(box[3] + 1, self.height)


def _overlap(a, b) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _union(*boxes) -> tuple[int, int, int, int]:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _read_pgm(data: bytes) -> tuple[tuple[int, int], bytes]:
    """(width, height) and the grey bytes of a binary PGM (P5, 8-bit) as pdftoppm -gray writes it."""
    magic, width, height, depth, pixels = data.split(maxsplit=4)
    assert magic == b"P5" and depth == b"255", data[:20]
    return (int(width), int(height)), pixels


# --- The fonts the server has ------------------------------------------------------------------------------

CONFIG = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig><dir>{fonts}</dir><cachedir>{cache}</cachedir></fontconfig>
"""


def _installed(weight: str, target: Path) -> None:
    """A full "Noto Sans Devanagari" as fonts-noto-core installs it: the Devanagari letters and the Latin
    letters, digits and punctuation in one TrueType font (from the vendored subsets, Latin after Devanagari)."""
    parts = []
    for name in (f"noto-sans-devanagari-devanagari-{weight}-normal", f"noto-sans-latin-{weight}-normal"):
        font = TTFont(STATIC / "fonts" / f"{name}.woff2")
        font.flavor = None
        parts.append(io.BytesIO())
        font.save(parts[-1])
        parts[-1].seek(0)
    font = Merger().merge(parts)
    font["head"].fontRevision = 2.001  # Debian 12's, older than the vendored subset's (fontconfig prefers newer)
    font.save(target)


@pytest.fixture(params=["no fonts", "Noto Sans Devanagari"])
def server_fonts(request, tmp_path, monkeypatch) -> str:
    """The server's fonts for this test's PDFs: none, or a full "Noto Sans Devanagari"."""
    fonts = tmp_path / "server-fonts"
    fonts.mkdir()
    if request.param == "Noto Sans Devanagari":
        for weight, style in (("400", "Regular"), ("700", "Bold")):
            _installed(weight, fonts / f"NotoSansDevanagari-{style}.ttf")
    config = tmp_path / "fonts.conf"
    config.write_text(CONFIG.format(fonts=fonts, cache=tmp_path / "font-cache"))
    monkeypatch.setenv("FONTCONFIG_FILE", str(config))
    return request.param
