"""PDFs of the app's own print pages (prescriptions, billing documents) with WeasyPrint, which reads
only files under static/ (the page's stylesheet, vendored fonts) and never the network; a missing file
fails the PDF rather than printing empty boxes."""

import mimetypes
from pathlib import Path
from urllib.request import url2pathname

from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

STATIC = Path(__file__).resolve().parents[1] / "static"


class StaticFiles(URLFetcher):
    """WeasyPrint's fetcher: files under static/ read from disk, nothing else."""

    def __init__(self):
        super().__init__(fail_on_errors=True)

    def fetch(self, url, headers=None):
        path = Path(url2pathname(url.removeprefix("file:"))).resolve() if url.startswith("file:") else None
        if path is None or not path.is_relative_to(STATIC) or not path.is_file():
            raise ValueError(f"not a static file: {url[:80]}")
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": mime})


def write_pdf(html: str, sheet: str, **options) -> bytes:
    """The PDF of a print page styled by static/`sheet`; `options` go to WeasyPrint's write_pdf."""
    fonts, fetcher = FontConfiguration(), StaticFiles()
    stylesheet = CSS(filename=str(STATIC / sheet), font_config=fonts, url_fetcher=fetcher)
    return HTML(string=html, base_url=str(STATIC) + "/", url_fetcher=fetcher).write_pdf(
        stylesheets=[stylesheet], font_config=fonts, **options)
