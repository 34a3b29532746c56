from __future__ import annotations

import os

from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from . import building, files
from .models import DataRelease, Download

_FORMATS = {name: fmt for fmt, name in files.FORMAT_FILES.items()}


@require_safe
def data_page(request):
    """The published community releases, newest first, with their files."""
    releases = DataRelease.objects.filter(state=DataRelease.State.PUBLISHED).order_by("-cutoff")
    return render(request, "releases/data.html", {"releases": releases, "file_names": files.FILE_NAMES})


def _visible(request, release: DataRelease) -> bool:
    if release.state == DataRelease.State.PUBLISHED:
        return True
    # Staff review a built release's files before publishing it.
    return release.state == DataRelease.State.BUILT and request.user.has_perm("releases.view_datarelease")


@require_safe
def release_file(request, release_id: int, name: str):
    release = get_object_or_404(DataRelease, pk=release_id)
    if name not in files.FILE_NAMES or not _visible(request, release):
        raise Http404("No such file.")
    path = building.release_path(release) / name
    if not path.is_file():
        raise Http404("No such file.")
    handle = open(path, "rb")  # noqa: SIM115 - FileResponse closes it
    if request.method == "GET":  # a HEAD request downloads nothing
        Download.objects.create(
            user=request.user if request.user.is_authenticated else None,
            release=release,
            format=_FORMATS[name],
            bytes=os.fstat(handle.fileno()).st_size,
        )
    return FileResponse(handle, as_attachment=True, filename=f"arenasite-release-{release.pk}-{name}")
