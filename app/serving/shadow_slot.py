"""The shadow model's slot: a `ModelSlot` whose model only shadows (its own metrics, no
readiness of its own), and the settings it is served with."""

from __future__ import annotations

from typing import Any

from app.serving.slot import ModelSlot
from app.settings import Settings


def shadow_settings(settings: Settings) -> Settings:
    """The settings the shadow model is served with: SHADOW_MODEL_URI for the URI, one model
    thread, no batching and no model processes (it predicts a request at a time, on its own
    thread)."""
    return settings.model_copy(
        update={
            "model_uri": settings.shadow_model_uri,
            "run_id": None,
            "batching": False,
            "model_processes": 0,
            "predict_threads": 1,
        }
    )


class ShadowSlot(ModelSlot):
    """A model slot whose model only shadows: it counts into the shadow's metrics and marks no
    worker ready (the served model's readiness is the service's)."""

    role = "shadow model"

    def _observe_install(self, identity: dict[str, Any], load_seconds: float, source: str) -> None:
        self.metrics.observe_shadow(identity)
        # Its failure count exists from the start, at 0: a rate sees the first failure.
        self.metrics.shadow_failures.labels(identity["name"], identity.get("version") or "")

    def _observe_stop(self) -> None:
        pass

    def count_reload(self, result: str) -> None:
        self.metrics.shadow_reloads.labels(result).inc()

    def count_load_failure(self) -> None:
        self.metrics.shadow_load_failures.inc()

    def mark_registry(self, *, reachable: bool) -> None:
        self.registry_reachable = reachable
