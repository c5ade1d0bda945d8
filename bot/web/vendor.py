"""Browser libraries from npm, served by the bot service itself (never from a CDN).

``python -m bot setup`` installs the exact versions pinned in ``bot/web/frontend/package-lock.json``
into ``bot/web/frontend/node_modules``. Only the built files listed in :data:`VENDOR_FILES` are
reachable, at ``/static/vendor/<name>``; every other path under that prefix is a 404.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from fastapi.staticfiles import StaticFiles

logger = logging.getLogger(__name__)

VENDOR_URL_PREFIX = "/static/vendor"
FRONTEND_DIR = Path(__file__).resolve().parent / "frontend"
NODE_MODULES = FRONTEND_DIR / "node_modules"
VENDOR_FILES: Mapping[str, str] = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "chart.umd.js": "chart.js/dist/chart.umd.js",
    "axe.min.js": "axe-core/axe.min.js",
}
"""URL name under :data:`VENDOR_URL_PREFIX` → file path inside ``node_modules``."""


def vendor_url(name: str) -> str:
    """The URL path of an allow-listed vendor file, e.g. ``/static/vendor/htmx.min.js``.

    Raises:
        KeyError: ``name`` is not in :data:`VENDOR_FILES`.
    """
    if name not in VENDOR_FILES:
        raise KeyError(f"{name!r} is not served; add it to VENDOR_FILES")
    return f"{VENDOR_URL_PREFIX}/{name}"


class VendorFiles(StaticFiles):
    """Static files limited to an explicit allow-list of files inside ``node_modules``.

    Caching headers, ``HEAD`` and content types come from Starlette's ``StaticFiles``.
    """

    def __init__(
        self, *, node_modules: Path = NODE_MODULES, files: Mapping[str, str] = VENDOR_FILES
    ) -> None:
        super().__init__(directory=None, check_dir=False)
        self.node_modules = node_modules
        self.files = dict(files)

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        """Map an allow-listed name to its file; anything else is not found."""
        relative = self.files.get(path)
        if relative is None:
            return "", None
        full_path = self.node_modules / relative
        try:
            return str(full_path), os.stat(full_path)
        except FileNotFoundError:
            logger.warning(
                "vendor file %s is missing (%s): run `python -m bot setup` to install "
                "the front-end packages",
                path,
                full_path,
            )
            return "", None
