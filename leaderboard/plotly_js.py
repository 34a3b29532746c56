"""plotly.js as bundled in the plotly Python package, which the site serves itself.

Pages must not depend on a CDN, so the browser loads plotly.js from us. It comes from the
installed package rather than a copy in the repository, so upgrading the dependency is
the whole upgrade. A view serves it (see ``views.plotly_js``) rather than the static files
pipeline: the URL carries a fingerprint of the file, so it can be cached for a year, and
it needs no collectstatic step or finder settings to work in every environment.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from importlib.resources import files
from pathlib import Path

from django.urls import reverse


def path() -> Path:
    return Path(str(files("plotly") / "package_data" / "plotly.min.js"))


@functools.cache
def fingerprint() -> str:
    """A short hash of the file: it changes exactly when the file does, so it names the URL and the ETag."""
    return hashlib.sha256(path().read_bytes()).hexdigest()[:12]


@functools.cache
def gzipped() -> bytes:
    """The file gzipped once per process (4.8 MB down to 1.5 MB); mtime=0 keeps the bytes stable."""
    return gzip.compress(path().read_bytes(), compresslevel=9, mtime=0)


def url() -> str:
    return reverse("leaderboard:plotly-js", kwargs={"fingerprint": fingerprint()})
