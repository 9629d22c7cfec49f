"""The viewer's web application (Starlette): the JSON API of ``docs/viewer.md`` and the static page.

Read-only: every route is GET. Slices are windowed on the server and sent as 8-bit PNG with an ETag
(the file's version and the window) and ``Cache-Control: max-age`` so that the browser reuses what it
prefetched; ``If-None-Match`` gets 304 without decoding the slice.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from deeplesion.view.service import Viewer, ViewError, static_dir

SLICE_MAX_AGE_S = 3600
"""How long a browser may reuse a served slice without asking again (the release is read-only)."""


def _error(exc: ViewError) -> JSONResponse:
    return JSONResponse({"error": str(exc), "status": exc.status}, status_code=exc.status)


def create_app(viewer: Viewer) -> Starlette:
    """The application serving ``viewer``'s data.

    Parameters
    ----------
    viewer
        The release, annotations and predictions to serve.

    Returns
    -------
    starlette.applications.Starlette
        Routes: ``/`` (the page), ``/static/...``, ``/api/lesions``, ``/api/lesion/{line}``,
        ``/api/series/{folder}``,
        ``/api/slice/{folder}/{name}``, ``/api/hu/{folder}/{name}``, ``/api/predictions/{file_name}``,
        ``/api/patient/{patient}`` and ``/api/patient/{patient}/timeline.png``.
    """

    def json_route(compute: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:  # decoding and tracking are CPU work: off the event loop, so requests overlap
                return JSONResponse(await run_in_threadpool(compute, request))
            except ViewError as exc:
                return _error(exc)

        return endpoint

    async def page(request: Request) -> Response:
        return FileResponse(static_dir() / "index.html", headers={"Cache-Control": "no-cache"})

    async def slice_png(request: Request) -> Response:
        folder, name = request.path_params["folder"], request.path_params["name"]
        window = request.query_params.get("window")
        try:
            etag = viewer.slice_etag(folder, name, window)
            if etag is not None and etag in request.headers.get("if-none-match", ""):
                return Response(status_code=304, headers={"ETag": etag})
            png = await run_in_threadpool(viewer.slice_png, folder, name, window)
        except ViewError as exc:
            return _error(exc)
        headers = {"ETag": png.etag, "Cache-Control": f"private, max-age={SLICE_MAX_AGE_S}"}
        return Response(png.data, media_type="image/png", headers=headers)

    async def timeline(request: Request) -> Response:
        try:
            data = await run_in_threadpool(viewer.timeline_png, request.path_params["patient"])
        except ViewError as exc:
            return _error(exc)
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache"})

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"no such page or API route: {request.url.path}", "status": 404}, 404)

    routes = [
        Route("/", page),
        Route("/api/lesions", json_route(lambda r: viewer.lesions(dict(r.query_params)))),
        Route("/api/lesion/{line}", json_route(lambda r: viewer.lesion(r.path_params["line"]))),
        Route("/api/series/{folder}", json_route(lambda r: viewer.series(r.path_params["folder"]))),
        Route("/api/slice/{folder}/{name}", slice_png),
        Route(
            "/api/hu/{folder}/{name}",
            json_route(
                lambda r: viewer.hu_at(
                    r.path_params["folder"],
                    r.path_params["name"],
                    r.query_params.get("x"),
                    r.query_params.get("y"),
                )
            ),
        ),
        Route(
            "/api/predictions/{file_name}",
            json_route(lambda r: viewer.predictions_on(r.path_params["file_name"])),
        ),
        Route("/api/patient/{patient}/timeline.png", timeline),
        Route("/api/patient/{patient}", json_route(lambda r: viewer.patient(r.path_params["patient"]))),
        Mount("/static", app=StaticFiles(directory=static_dir()), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found})
