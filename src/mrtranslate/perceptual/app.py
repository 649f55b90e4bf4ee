"""The study server: ``create_app(study_dir)`` builds a FastAPI app over the study database.

Readers: ``GET /`` (enter a name) -> ``POST /api/readers`` -> personal link ``/r/{token}``;
``GET /api/r/{token}/next`` gives the next unanswered image in the reader's own random order;
``POST /api/r/{token}/answer`` stores one answer (a second answer to the same image is refused
with 409); images are served from ``/img/{id}.png``. Results: ``/admin?token=...`` (HTML),
``/admin/results.json`` and ``/admin/results.csv`` with the admin token (query parameter or
``X-Admin-Token`` header).

Blinding: nothing a reader receives says whether an image is real. Ids are random (``secrets``),
each reader's order is a cryptographic shuffle, every image file has the same byte length
(uncompressed PNG), and images are served from memory with identical headers. Request bodies are
capped at ``MAX_BODY_BYTES`` whatever the transfer encoding (413), reader names are validated
(422) and readers are identified by their id, never by name.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, field_validator

from mrtranslate.fileio import to_json
from mrtranslate.perceptual import pages, store
from mrtranslate.perceptual.analysis import analyse
from mrtranslate.perceptual.report import results_html

MAX_BODY_BYTES = 4096
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")
NO_STORE = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class NewReader(BaseModel):
    name: str = Field(min_length=1, max_length=100)

    @field_validator("name")
    @classmethod
    def printable(cls, name: str) -> str:
        """A label only (names may repeat): printable Unicode, not blank, encodable as UTF-8."""
        name = name.strip()
        if not name or not name.isprintable():
            raise ValueError("the name must be printable text")
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the name must be valid Unicode text") from None
        return name


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413, whatever the
    transfer encoding (a declared Content-Length, or chunks counted as they arrive). Bodies up to
    the limit are read first and replayed to the app, so an over-long one is never buffered."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._too_large(scope, receive, send)
            return
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed():
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)

    @staticmethod
    async def _too_large(scope, receive, send):
        await JSONResponse({"detail": "request too large"}, status_code=413)(scope, receive, send)


class Answer(BaseModel):
    image_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    label: str = Field(pattern=r"^(real|synthetic)$")


@dataclass
class _Study:
    """What every route needs: the folder, the admin token and the images (bytes in memory)."""

    folder: Path
    admin_token: str
    image_ids: list[str]
    image_bytes: dict[str, bytes]

    @classmethod
    def open(cls, folder: Path) -> _Study:
        conn = store.connect(folder)
        try:
            token = str(store.get_meta(conn, "admin_token"))
            ids = [r["id"] for r in conn.execute("SELECT id FROM images ORDER BY id")]
        finally:
            conn.close()
        # Served from memory: no disk-cache timing, and every file has the same length.
        images = {i: (folder / "images" / f"{i}.png").read_bytes() for i in ids}
        return cls(folder, token, ids, images)


def _reader_or_404(conn, token: str):
    row = store.reader_by_token(conn, token) if TOKEN_RE.match(token) else None
    if row is None:
        raise HTTPException(404, "unknown reader link")
    return row


def create_app(study_dir: str | Path) -> FastAPI:
    """The study server for the study folder ``study_dir``."""
    study = _Study.open(Path(study_dir))
    app = FastAPI(
        title="mrtranslate perceptual study", docs_url=None, redoc_url=None, openapi_url=None
    )

    @app.middleware("http")
    async def no_store_headers(request: Request, call_next):
        response = await call_next(request)
        for key, value in NO_STORE.items():
            response.headers.setdefault(key, value)
        return response

    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        # Never echo the input back: it may not even be encodable (a lone surrogate).
        errors = [
            {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    _reader_routes(app, study)
    _admin_routes(app, study)
    return app


def _reader_routes(app: FastAPI, study: _Study) -> None:
    """The welcome page, personal links, the next image, answers and the images."""
    folder = study.folder

    @app.get("/", response_class=HTMLResponse)
    def welcome():
        return pages.welcome()

    @app.post("/api/readers")
    def new_reader(body: NewReader):
        token = secrets.token_hex(16)
        order = list(study.image_ids)
        secrets.SystemRandom().shuffle(order)  # cryptographic: the order predicts nothing
        conn = store.connect(folder)
        try:
            store.add_reader(conn, body.name, token, order)
        finally:
            conn.close()
        return {"token": token, "link": f"/r/{token}"}

    @app.get("/r/{token}", response_class=HTMLResponse)
    def reader_page(token: str):
        conn = store.connect(folder)
        try:
            _reader_or_404(conn, token)
        finally:
            conn.close()
        return pages.reader(token)

    _answer_routes(app, study)
    _image_route(app, study)


def _answer_routes(app: FastAPI, study: _Study) -> None:
    """A reader's next image and answers (each image once, in the reader's own order)."""
    folder, known_images = study.folder, set(study.image_ids)

    @app.get("/api/r/{token}/next")
    def next_image(token: str):
        conn = store.connect(folder)
        try:
            reader = _reader_or_404(conn, token)
            order = json.loads(reader["image_order"])
            done = store.answered_ids(conn, reader["id"])
        finally:
            conn.close()
        for position, image_id in enumerate(order, start=1):
            if image_id not in done:
                return {
                    "done": False,
                    "image_id": image_id,
                    "image_url": f"/img/{image_id}.png",
                    "position": position,
                    "total": len(order),
                }
        return {"done": True, "answered": len(done), "total": len(order)}

    @app.post("/api/r/{token}/answer")
    def answer(token: str, body: Answer):
        if body.image_id not in known_images:
            raise HTTPException(404, "unknown image")
        conn = store.connect(folder)
        try:
            reader = _reader_or_404(conn, token)
            order = json.loads(reader["image_order"])
            stored = store.add_answer(
                conn, reader["id"], body.image_id, body.label, order.index(body.image_id) + 1
            )
            answered = len(store.answered_ids(conn, reader["id"]))
        finally:
            conn.close()
        if not stored:
            raise HTTPException(409, "this image was already answered; answers cannot change")
        return {"stored": True, "answered": answered, "total": len(order)}


def _image_route(app: FastAPI, study: _Study) -> None:
    """Every image has the same length and headers, and is served from memory."""
    known_images = set(study.image_ids)

    @app.get("/img/{name}")
    def image(name: str):
        image_id = name.removesuffix(".png")
        if not name.endswith(".png") or image_id not in known_images:
            raise HTTPException(404, "unknown image")
        return Response(study.image_bytes[image_id], media_type="image/png")


def _check_admin(request: Request, study: _Study) -> None:
    given = request.query_params.get("token") or request.headers.get("x-admin-token") or ""
    if not secrets.compare_digest(given.encode(), study.admin_token.encode()):
        raise HTTPException(403, "admin token required")


def _admin_routes(app: FastAPI, study: _Study) -> None:
    """Results for the holder of the admin token: HTML, JSON and CSV."""
    folder = study.folder

    @app.get("/admin", response_class=HTMLResponse)
    def admin(request: Request):
        _check_admin(request, study)
        token = request.query_params.get("token") or ""
        return results_html(
            analyse(store.all_rows(folder)),
            csv_link=f"/admin/results.csv?token={token}",
            json_link=f"/admin/results.json?token={token}",
        )

    @app.get("/admin/results.json")
    def results_json(request: Request):
        _check_admin(request, study)
        return Response(to_json(analyse(store.all_rows(folder))), media_type="application/json")

    @app.get("/admin/results.csv")
    def results_csv(request: Request):
        _check_admin(request, study)
        return Response(store.answers_csv(folder), media_type="text/csv")
