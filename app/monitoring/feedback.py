"""POST /feedback's work: find the predictions a request id was answered with, wherever they were
made, and score the labels against them exactly once.

- In this process: the newest requests' predictions are kept in memory (`Recent`).
- In the other workers of this host (WORKERS > 1): each worker answers its siblings on a Unix
  socket in the folder they share (`Siblings`); no database is needed.
- In the other replicas: through the prediction log, the one store they share. With the log on,
  the labels' row in its feedback table is the claim: the first feedback for a request id
  stores them and is scored, any later one is refused (409), on whichever replica it lands.

Without the log, a request id is scored once in the host that answered it (its memory is the
claim); behind a load balancer, a feedback that lands on another replica cannot find it, and
the answer says which setting to turn on.

Scores are counters by model version and outcome (`feedback_rows_total`): live accuracy over
the fleet is a recording rule on them. When a shadow model (SHADOW_MODEL_URI) predicted the
request's rows too, its predictions are kept beside the served ones (and logged), and the same
labels score both: `shadow_feedback_rows_total` counts the rows by version pair and by both
outcomes, the paired table that the shadow's accuracy and the promotion gate are read from.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from app.errors import Conflict, InvalidInput, NotFound, NotReady
from app.monitoring.metrics import Metrics
from app.monitoring.predlog import PredictionLog
from app.monitoring.siblings import Siblings

logger = logging.getLogger(__name__)

Entry = tuple[str, str, tuple[Any, ...]]
"""A request's model name, version and predictions, one per row."""
Found = tuple[Entry, Entry | None]
"""A request's served predictions, and the shadow model's of the same rows (None: not shadowed)."""


class Recent:
    """The newest requests' predictions by request id, and the ids scored since."""

    def __init__(self, remember: int = 100_000, rows: int = 1_000_000) -> None:
        self.remember = remember
        self.rows = rows
        # Up to `remember` requests and `rows` predictions in all, alive for minutes. Kept as
        # tuples of atoms, which the cyclic GC stops tracking, or every full collection walks
        # them all (with lists: ~20 ms pauses several times a second under load, the p99 of
        # every request).
        self._recent: OrderedDict[str, Entry] = OrderedDict()
        self._kept = 0
        self._scored: OrderedDict[str, None] = OrderedDict()
        self._shadow: OrderedDict[str, Entry] = OrderedDict()  # the shadow's, by request id

    def add(self, request_id: str, key: tuple[str, str], predictions: list[Any]) -> None:
        recent = self._recent
        if (again := recent.pop(request_id, None)) is not None:  # a client reused its id
            self._kept -= len(again[2])
        self._scored.pop(request_id, None)
        recent[request_id] = (*key, tuple(predictions))
        self._kept += len(predictions)
        # The newest request stays, even alone over the bound (MAX_REQUEST_ROWS bounds it).
        while (len(recent) > self.remember or self._kept > self.rows) and len(recent) > 1:
            self._kept -= len(recent.popitem(last=False)[1][2])

    def add_shadow(self, request_id: str, key: tuple[str, str], predictions: list[Any]) -> None:
        """The shadow model's predictions of a request's rows (kept while the served ones are)."""
        if request_id not in self._recent:
            return  # forgotten already, or scored before the shadow answered
        self._shadow[request_id] = (*key, tuple(predictions))
        while self._shadow:  # the requests forgotten since go (they are the oldest)
            oldest = next(iter(self._shadow))
            if oldest in self._recent:
                break
            del self._shadow[oldest]

    def peek(self, request_id: str) -> Entry | None:
        return self._recent.get(request_id)

    def shadow(self, request_id: str) -> Entry | None:
        return self._shadow.get(request_id)

    def take(self, request_id: str) -> Entry | None:
        """The request's predictions, now scored: not given out again."""
        self._shadow.pop(request_id, None)
        entry = self._recent.pop(request_id, None)
        if entry is not None:
            self._kept -= len(entry[2])
            self.mark_scored(request_id)
        return entry

    def mark_scored(self, request_id: str) -> None:
        self._scored[request_id] = None
        while len(self._scored) > self.remember:
            self._scored.popitem(last=False)

    def scored(self, request_id: str) -> bool:
        return request_id in self._scored

    def answer(self, op: str, request_id: str, rows: int) -> dict[str, Any]:
        """What this worker says when asked for a request's predictions (`take` or `peek`),
        taking them only when `rows` labels fit them."""
        entry = self.peek(request_id)
        if entry is None:
            return {"state": "scored" if self.scored(request_id) else "unknown"}
        shadow = self.shadow(request_id)
        if op == "take" and len(entry[2]) == rows:
            self.take(request_id)
        answer: dict[str, Any] = {"state": "found", "entry": [entry[0], entry[1], list(entry[2])]}
        if shadow is not None:
            answer["shadow"] = [shadow[0], shadow[1], list(shadow[2])]
        return answer


class FeedbackScorer:
    """Scores labels against a request's predictions, once."""

    def __init__(
        self, metrics: Metrics, recent: Recent, siblings: Siblings, log: PredictionLog | None
    ) -> None:
        self.metrics = metrics
        self.recent = recent
        self.siblings = siblings
        self.log = log

    async def score(self, request_id: str, labels: list[Any]) -> dict[str, Any]:
        if self.log is None:
            entry, shadow = await self._take(request_id, len(labels))
            stored = False
        else:
            (entry, shadow), stored = await self._claim(request_id, labels)
        name, version, predictions = entry
        _check_length(predictions, labels)
        correct = self.count((name, version), predictions, labels)
        answer: dict[str, Any] = {
            "request_id": request_id,
            "rows": len(predictions),
            "correct": correct,
            "accuracy": correct / len(predictions),
            "model": {"name": name, "version": version},
            "stored": stored,
        }
        if shadow is not None and len(shadow[2]) == len(labels):
            right = self.count_shadow((name, version), predictions, shadow, labels)
            answer["shadow"] = {
                "correct": right,
                "accuracy": right / len(labels),
                "model": {"name": shadow[0], "version": shadow[1]},
            }
        return answer

    async def _find(self, op: str, request_id: str, rows: int) -> Found | None:
        """The request's predictions (and the shadow's, if any) from this worker or a sibling;
        Conflict if scored. Each worker answers the same way, this one first
        (`Recent.answer`)."""
        answer = self.recent.answer(op, request_id, rows)
        if answer["state"] == "unknown":
            answer = await self.siblings.ask(op, request_id, rows)
        if answer["state"] == "scored":
            raise _already()
        if answer["state"] == "found":
            entry = _entry(answer["entry"])
            assert entry is not None
            return entry, _entry(answer.get("shadow"))
        return None

    async def _take(self, request_id: str, rows: int) -> Found:
        found = await self._find("take", request_id, rows)
        if found is None:
            raise NotFound(
                "no predictions are known for this request id here: this service keeps the"
                " newest FEEDBACK_MEMORY_ROWS predictions of its own workers; behind a load"
                " balancer with several replicas, set PREDICTION_LOG_URL so that any replica"
                " finds a prediction made by another"
            )
        return found

    async def _claim(self, request_id: str, labels: list[Any]) -> tuple[Found, bool]:
        """With the log on: store the labels as the claim, reading the request's rows from the
        log when no worker of this host holds them."""
        assert self.log is not None
        found = await self._find("peek", request_id, len(labels))
        if found is not None:
            _check_length(found[0][2], labels)
        try:
            claim = await self.log.claim(request_id, labels, fetch=found is None)
        except Exception as exc:
            if found is None:
                raise NotReady("the prediction log's database cannot be reached") from exc
            # This host made the prediction: its memory is the claim until the log is back.
            return await self._take(request_id, len(labels)), False
        if claim.state == "scored":
            raise _already()
        if claim.state == "unknown":
            raise NotFound("no predictions are logged for this request id (yet)")
        if claim.state == "mismatch":
            _check_length(claim.predictions, labels)
        self.recent.take(request_id)
        if found is None:
            found = (claim.model, claim.version, tuple(claim.predictions)), claim.shadow
        return found, True

    def count(self, key: tuple[str, str], predictions: Sequence[Any], labels: list[Any]) -> int:
        """Count each label against its prediction; how many were right."""
        right = sum(same_class(p, y) for p, y in zip(predictions, labels, strict=True))
        outcome = self.metrics.feedback_rows
        if right:
            outcome.labels(*key, "right").inc(right)
        if len(labels) - right:
            outcome.labels(*key, "wrong").inc(len(labels) - right)
        return right

    def count_shadow(
        self, key: tuple[str, str], served: Sequence[Any], shadow: Entry, labels: list[Any]
    ) -> int:
        """Count each label against both predictions of its row (the paired table); how many
        the shadow had right."""
        cells: collections.Counter[tuple[str, str]] = collections.Counter(
            (_outcome(p, y), _outcome(q, y))
            for p, q, y in zip(served, shadow[2], labels, strict=True)
        )
        for (served_outcome, shadow_outcome), n in cells.items():
            self.metrics.shadow_feedback.labels(
                *key, shadow[0], shadow[1], served_outcome, shadow_outcome
            ).inc(n)
        return sum(n for (_, s), n in cells.items() if s == "right")


def _entry(value: Any) -> Entry | None:
    if not value:
        return None
    name, version, predictions = value
    return str(name), str(version), tuple(predictions)


def _outcome(prediction: Any, label: Any) -> str:
    return "right" if same_class(prediction, label) else "wrong"


def _already() -> Conflict:
    return Conflict(
        "labels were already scored for this request id; the first ones stand (send a new"
        " request id for a new prediction)"
    )


def _check_length(predictions: Sequence[Any], labels: list[Any]) -> None:
    if len(labels) != len(predictions):
        message = f"expected {len(predictions)} labels (one per predicted row), got {len(labels)}"
        raise InvalidInput(message, [{"loc": ["labels"], "msg": message}])


def same_class(prediction: Any, label: Any) -> bool:
    """Whether a label names the predicted class (2 == 2.0 == "2")."""
    if prediction == label:
        return True
    return str(prediction) == str(label) or _number(prediction) == _number(label) is not None


def _number(value: Any) -> float | None:
    with contextlib.suppress(TypeError, ValueError):
        return float(value)
    return None
