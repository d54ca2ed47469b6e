"""A short load on the API that gives every dashboard panel something to show.

Valid requests (single records and 50-row batches of the iris rows), invalid ones (4xx), true
labels for the batches' rows (POST /feedback, for live accuracy), and a reload.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.iris import IRIS_EXAMPLE, iris_data

BATCH = 50
SINGLES = 20
# Each is refused with 422 (a string for a number, a missing field, an empty batch).
INVALID: tuple[dict[str, Any], ...] = (
    {**IRIS_EXAMPLE, "petal_width": "wide"},
    {k: v for k, v in IRIS_EXAMPLE.items() if k != "sepal_width"},
    {"records": []},
)


@dataclass
class Load:
    """Drives an API at `client`'s base URL; counts what it answered."""

    client: httpx.Client
    api_key: str | None = None
    statuses: Counter[int] = field(default_factory=Counter)
    feedback: list[int] = field(default_factory=list)
    reloads: list[int] = field(default_factory=list)

    def predict(self, body: Any = None, **kwargs: Any) -> httpx.Response:
        if "content" not in kwargs:
            kwargs["json"] = body
        response = self.client.post("/predict", **kwargs)
        self.statuses[response.status_code] += 1
        return response

    def send_feedback(self, answer: httpx.Response, labels: list[int]) -> None:
        """POST /feedback with the true labels of one /predict answer's rows.

        Assumes the lead's contract: the answer carries `request_id` (in the body, else the
        X-Request-ID header) and /feedback takes {"request_id", "labels"}; align this with
        app/ once it lands."""
        request_id = answer.json().get("request_id") or answer.headers.get("x-request-id")
        body = {"request_id": request_id, "labels": labels}
        self.feedback.append(self.client.post("/feedback", json=body).status_code)

    def run(self) -> None:
        """One round: singles, batches with feedback, invalid requests, a reload."""
        records, labels = iris_data()
        for i in range(SINGLES):
            self.predict(records[(i * 7) % len(records)])
        for start in range(0, len(records), BATCH):
            answer = self.predict({"records": records[start : start + BATCH]})
            if answer.status_code == 200:
                self.send_feedback(answer, labels[start : start + BATCH])
        for body in INVALID * 3:
            self.predict(body)
        self.predict(content=b"not json", headers={"content-type": "application/json"})  # 422
        self.predict(content=b"x", headers={"content-type": "text/plain"})  # 415
        if self.api_key:
            headers = {"authorization": f"Bearer {self.api_key}"}
            self.reloads.append(self.client.post("/admin/reload", headers=headers).status_code)
