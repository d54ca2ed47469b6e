"""HTTP routes: thin adapters from requests to the `ModelService`."""

from fastapi import APIRouter

from app.routes import health, info, metrics, predict

router = APIRouter()
for module in (health, info, metrics, predict):
    router.include_router(module.router)
