"""`GET /demo`: one self-contained page that streams the microphone to the FunASR WebSocket (at `/`)
and uploads files to `/v1/jobs`. No build step and no external resources: the page is a single
HTML file shipped in the package (`api/static/demo.html`)."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

# Everything the page uses is inline or on this origin (the WebSocket included); the worklet
# module is built from the page's own script as a blob: URL.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'unsafe-inline' blob:",
        "style-src 'unsafe-inline'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=1)
def demo_html() -> str:
    """The page, read from the package once."""
    return files("asrserve.api").joinpath("static/demo.html").read_text(encoding="utf-8")


@router.get("/demo", response_class=HTMLResponse)
async def demo() -> HTMLResponse:
    return HTMLResponse(demo_html(), headers=HEADERS)
