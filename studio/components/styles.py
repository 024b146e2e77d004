"""The studio's Tailwind CSS, prebuilt, linked from every page.

NiceGUI's default is Tailwind's browser runtime, which compiles the classes it meets in the
page: about 50 ms of every page load, and a restyle of the whole page whenever a class new to
it appears (a canvas drag's first frame took 150–230 ms). The studio runs NiceGUI with
`tailwind=False` and links `tailwind.css` instead, which `make canvas` builds with Tailwind's
CLI from `assets/canvas/tailwind.css` into `canvas_bundle/` (see that file for what it scans).
"""

from __future__ import annotations

import hashlib

from nicegui import app, ui
from nicegui.client import Client

from studio.components.canvas import BUNDLE_DIR

STYLESHEET = BUNDLE_DIR / "tailwind.css"
#: A year: the URL carries the file's digest, so a rebuilt file gets a new URL.
MAX_CACHE_AGE_S = 365 * 24 * 3600


def link_prebuilt_tailwind() -> str:
    """Serve the prebuilt stylesheet and link it from the head of every page; its URL.

    Call it before `ui.run(..., tailwind=False)`. Calling it again adds nothing.
    """
    if not STYLESHEET.is_file():
        raise FileNotFoundError(
            f"The studio's stylesheet is missing ({STYLESHEET}). Build it with `make canvas` "
            "(needs Node.js and npm), or run `make studio`, which builds it."
        )
    digest = hashlib.sha256(STYLESHEET.read_bytes()).hexdigest()[:16]
    url = f"/_flowloom/{digest}/tailwind.css"
    link = f'<link rel="stylesheet" href="{url}">'
    if link not in Client.shared_head_html:
        app.add_static_file(local_file=STYLESHEET, url_path=url, max_cache_age=MAX_CACHE_AGE_S)
        ui.add_head_html(link, shared=True)
    return url
