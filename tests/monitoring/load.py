"""A short load on the API that gives every dashboard panel something to show.

Valid requests (single records and 50-row batches of the iris rows), invalid ones (4xx), true
labels for the batches' rows (POST /feedback, for live accuracy), and a reload. Given several
replicas, the requests go to each in turn (as a load balancer's round robin) and each feedback
to another replica than the one that answered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
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
    others: Sequence[httpx.Client] = ()
    """Further replicas: requests go to each in turn."""
    statuses: Counter[int] = field(default_factory=Counter)
    feedback: list[int] = field(default_factory=list)
    reloads: list[int] = field(default_factory=list)
    labelled: list[tuple[str, list[Any], list[int]]] = field(default_factory=list)
    """(request id, predictions, true labels) of each feedback answered 200."""
    _turn: int = 0

    @property
    def clients(self) -> list[httpx.Client]:
        return [self.client, *self.others]

    def predict(self, body: Any = None, **kwargs: Any) -> httpx.Response:
        if "content" not in kwargs:
            kwargs["json"] = body
        response = self.clients[self._turn % len(self.clients)].post("/predict", **kwargs)
        self._turn += 1
        self.statuses[response.status_code] += 1
        return response

    def send_feedback(self, answer: httpx.Response, labels: list[int], to: int = 0) -> None:
        """POST /feedback to the `to`th replica with the true labels of one /predict answer's
        rows (the answer's X-Request-ID names it)."""
        request_id = answer.headers["x-request-id"]
        body = {"request_id": request_id, "labels": labels}
        status = self.clients[to % len(self.clients)].post("/feedback", json=body).status_code
        self.feedback.append(status)
        if status == 200:
            self.labelled.append((request_id, answer.json()["predictions"], labels))

    def run(self) -> None:
        """One round: singles, batches with feedback, invalid requests, a reload."""
        records, labels = iris_data()
        for i in range(SINGLES):
            self.predict(records[(i * 7) % len(records)])
        batches = []
        for start in range(0, len(records), BATCH):
            turn = self._turn
            answer = self.predict({"records": records[start : start + BATCH]})
            if answer.status_code == 200:
                batches.append((answer, labels[start : start + BATCH], turn + 1))
        if self.others:
            time.sleep(1.0)  # another replica reads them from the prediction log
        for answer, truth, to in batches:
            self.send_feedback(answer, truth, to)
        for body in INVALID * 3:
            self.predict(body)
        self.predict(content=b"not json", headers={"content-type": "application/json"})  # 422
        self.predict(content=b"x", headers={"content-type": "text/plain"})  # 415
        if self.api_key:
            headers = {"authorization": f"Bearer {self.api_key}"}
            for client in self.clients:
                self.reloads.append(client.post("/admin/reload", headers=headers).status_code)
