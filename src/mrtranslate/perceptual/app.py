"""The study server: ``create_app(study_dir)`` builds a FastAPI app over the study database.

Readers: ``GET /`` (enter a name) -> ``POST /api/readers`` -> personal link ``/r/{token}``;
``GET /api/r/{token}/next`` gives the next unanswered image in the reader's own random order;
``POST /api/r/{token}/answer`` stores one answer (a second answer to the same image is refused
with 409); images are served from ``/img/{id}.png``. Nothing a reader receives says whether an
image is real. Results: ``/admin?token=...`` (HTML), ``/admin/results.json`` and
``/admin/results.csv`` with the admin token (query parameter or ``X-Admin-Token`` header).
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import secrets
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

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


class Answer(BaseModel):
    image_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    label: str = Field(pattern=r"^(real|synthetic)$")


def create_app(study_dir: str | Path) -> FastAPI:
    study = Path(study_dir)
    app = FastAPI(
        title="mrtranslate perceptual study", docs_url=None, redoc_url=None, openapi_url=None
    )
    conn0 = store.connect(study)
    admin_token = store.get_meta(conn0, "admin_token")
    image_ids = [r["id"] for r in conn0.execute("SELECT id FROM images ORDER BY id")]
    conn0.close()
    known_images = set(image_ids)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse({"detail": "request too large"}, status_code=413)
        response = await call_next(request)
        for key, value in NO_STORE.items():
            response.headers.setdefault(key, value)
        return response

    def reader_or_404(conn, token: str):
        row = store.reader_by_token(conn, token) if TOKEN_RE.match(token) else None
        if row is None:
            raise HTTPException(404, "unknown reader link")
        return row

    def check_admin(request: Request) -> None:
        given = request.query_params.get("token") or request.headers.get("x-admin-token") or ""
        if not secrets.compare_digest(given.encode(), str(admin_token).encode()):
            raise HTTPException(403, "admin token required")

    @app.get("/", response_class=HTMLResponse)
    def welcome():
        return pages.welcome()

    @app.post("/api/readers")
    def new_reader(body: NewReader):
        token = secrets.token_hex(16)
        order = list(image_ids)
        random.SystemRandom().shuffle(order)
        conn = store.connect(study)
        try:
            store.add_reader(conn, body.name.strip() or "reader", token, order)
        finally:
            conn.close()
        return {"token": token, "link": f"/r/{token}"}

    @app.get("/r/{token}", response_class=HTMLResponse)
    def reader_page(token: str):
        conn = store.connect(study)
        try:
            reader_or_404(conn, token)
        finally:
            conn.close()
        return pages.reader(token)

    @app.get("/api/r/{token}/next")
    def next_image(token: str):
        conn = store.connect(study)
        try:
            reader = reader_or_404(conn, token)
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
        conn = store.connect(study)
        try:
            reader = reader_or_404(conn, token)
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

    @app.get("/img/{name}")
    def image(name: str):
        image_id = name.removesuffix(".png")
        if not name.endswith(".png") or image_id not in known_images:
            raise HTTPException(404, "unknown image")
        return Response((study / "images" / f"{image_id}.png").read_bytes(), media_type="image/png")

    @app.get("/admin", response_class=HTMLResponse)
    def admin(request: Request):
        check_admin(request)
        token = request.query_params.get("token") or ""
        return results_html(
            analyse(store.all_rows(study)),
            csv_link=f"/admin/results.csv?token={token}",
            json_link=f"/admin/results.json?token={token}",
        )

    @app.get("/admin/results.json")
    def results_json(request: Request):
        check_admin(request)
        return Response(to_json(analyse(store.all_rows(study))), media_type="application/json")

    @app.get("/admin/results.csv")
    def results_csv(request: Request):
        check_admin(request)
        return Response(answers_csv(study), media_type="text/csv")

    return app


def answers_csv(study: Path) -> str:
    """One row per answer with the truth (for the admin export)."""
    data = store.all_rows(study)
    images = {img["id"]: img for img in data["images"]}
    names = {r["id"]: r["name"] for r in data["readers"]}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "reader",
            "position",
            "image_id",
            "label",
            "truth",
            "contrast",
            "model",
            "subject",
            "answered_unix",
        ]
    )
    for a in data["answers"]:
        img = images[a["image_id"]]
        writer.writerow(
            [
                names[a["reader_id"]],
                a["position"],
                a["image_id"],
                a["label"],
                img["truth"],
                img["contrast"],
                img["model"] or "",
                img["subject"],
                f"{a['answered']:.3f}",
            ]
        )
    return buf.getvalue()
