"""HTTP routes: thin adapters from requests to the model slot. (POST /predict is the lane's:
app/protocols/predict/lane.py.)"""

from fastapi import APIRouter, FastAPI

from app.api.routes import admin, docs, feedback, health, info, metrics


def add_routes(app: FastAPI, *, admin_routes: bool) -> None:
    """Put every route straight on the app.

    Not `include_router`: FastAPI keeps an included router as a layer that matches the
    request again at each level, which costs more per request than the whole model call."""
    modules: list[object] = [health, info, metrics, feedback, docs]
    if admin_routes:
        modules.append(admin)
    for module in modules:
        router: APIRouter = module.router  # type: ignore[attr-defined]
        app.router.routes.extend(router.routes)
