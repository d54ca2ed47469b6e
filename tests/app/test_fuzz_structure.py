"""Structure-aware fuzzing of POST /predict and the V2 lane's POST /v2/models/{name}/infer:
every accepted body format, mutated at every level.

The schema fuzz (test_fuzz.py) draws bodies from the OpenAPI document, one shape at a time; it
never built `{"records": [null]}`, which answered 500. Here Hypothesis builds a valid body in
each accepted format (the FORMATS table), then mutates it anywhere: any element replaced by
null, a boolean, a number, a string, an array or an object; keys dropped, added, renamed or in
another case; rows ragged; containers emptied, nested deeply or made very long; numbers huge,
tiny, negative zero or out of any float's range; `params` beside the data; the bytes cut
short, with a byte that is not UTF-8, or in another encoding Python's json reads (UTF-16,
UTF-32, a byte order mark: RFC 8259 says UTF-8, so refusing such a body as a whole is as right
as reading it right, and a 200 must read it right). Every body goes
through the real app (lifespan, the trained model, small row and byte limits so that very long
containers meet the limits rather than minutes of work), and every answer must hold:

- never a 5xx: a bad body answers 422 (413 over the byte limit), a good one 200;
- every non-200 is the one error shape `{"error": {"status", "code", "message", "details"}}`,
  each detail `{"loc", "msg"}`, and it echoes no value the client sent: no string value and no
  number (only distinctive ones are looked for: marker strings, numbers with 8+ digits; names
  the client sent, keys and `dataframe_split.columns`, may be quoted);
- every non-200 names a location. `details` is never empty. Locations are logical: the format
  key, the record's index and the field's name, in that order (`["records", 2, "petal_width"]`,
  `["dataframe_split", "data", 2, "petal_width"]`, `["inputs", 2, "petal_width"]` for a value
  given by columns). The reference decoder below lists every problem it finds, each at the
  most precise such location it can tell (the record's, the container's, or the body's); one
  detail must contain one of them, in order (it may say more, e.g. `"data"` or the field).
  `loc: []` names the body as a whole, and is accepted only when the body as a whole is wrong:
  not JSON (or nested past any parser's depth), not an object, empty, several formats or
  unknown keys beside the format, over the byte limit. A record the model cannot predict on
  (valid by the signature, say 1.7e308, which overflows once scaled) is a problem with that
  record: the error must name it, as the model says on that record alone;
- every 200 answers exactly `mlflow.pyfunc.load_model(uri).predict` on the rows the body
  means, one prediction per row, as read back by the reference decoder (written from the
  README's rules, not from app code); a body that decoder accepts and pyfunc predicts on must
  answer 200, one it refuses must not.

The Open Inference Protocol (V2) bodies are the same rows as inference requests: one tensor
per feature (`[n]`, or `[n, 1]` with flat or nested data, in any order) or one `[n, 4]` tensor
(flat or nested), FP64 / FP32 or INT64 / INT32 (integral rows), now and then with an `id`,
`parameters`, the `outputs` asked for, `model_name`, tensor parameters; mutated the same way
(BOOL, BYTES and every other datatype name, shapes one off, are in the vocabulary), and sent
with a Content-Type drawn among JSON ones and others. Their properties are the protocol's:
invalid input 400, a Content-Type that is not JSON 415 (and a binary-data parameter 415, the
binary extension not being implemented), over the byte limit 413, never a 5xx; every error is
`{"error": "<message>"}`, echoing no value, its message starting with the location of a
problem the reference decoder (`read_v2`) found (`inputs[1].data[0]: ...`; a row the model
refuses is named by its place in the first tensor's data); every 200's `predict` output is
pyfunc's predictions.

Runs are seeded (the same bodies every run, different ones for each format), and the number
of bodies sent is printed in the terminal summary (`figures`).
"""

from __future__ import annotations

import codecs
import functools
import json
import math
import random
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.app.conftest import AppFactory
from tests.iris import FEATURES, IRIS_EXAMPLE

MAX_ROWS = 40
MAX_BODY = 32 * 1024  # over 16 KiB the app parses on a thread: both ways are reached
BODIES_PER_FORMAT = 640  # 8 formats: 5,120 bodies a run
MIN_BODIES = 5_000

# Values far out of range overflow inside the model; numpy warns each time.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

Loc = tuple[str | int, ...]
Path = tuple[str | int, ...]
Record = dict[str, float]
Draw = Callable[[st.SearchStrategy[Any]], Any]


# -- bodies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """JSON text spliced into a body as is: what json.dumps cannot write (`1e999`, 5,000
    levels of nesting); `values` are the distinctive values inside it, for the echo check."""

    text: str
    values: tuple[str, ...] = ()


def dumps(node: Any) -> str:
    if isinstance(node, Raw):
        return node.text
    if isinstance(node, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in node.items()) + "}"
    if isinstance(node, list):
        return "[" + ",".join(dumps(v) for v in node) + "]"
    return json.dumps(node)  # NaN and Infinity come out as such, as some clients send them


def _distinctive(value: Any) -> str | None:
    """How a sent number would read if echoed; None if not worth looking for (a short number
    like 4 or 0.5 may well appear in an error's own words)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        text = str(abs(value))
        return text if len(text) >= 8 else None
    if isinstance(value, float) and math.isfinite(value):
        text = repr(abs(value))
        digits = re.sub(r"\D", "", text.split("e")[0]).strip("0")
        return text if len(digits) >= 8 else None
    return None


MARKER = re.compile(r"vq\d{7}")  # value strings carry one; no error's words contain it


@dataclass(frozen=True)
class Case:
    format: str
    body: bytes
    values: frozenset[str]  # texts that must not appear in an error body
    encoding: str = "utf-8"
    content_type: str = "application/json"

    def __repr__(self) -> str:  # how failures show it
        readable = self.encoding if self.encoding.startswith("utf-") else "utf-8"
        text = self.body.decode(readable, "backslashreplace")
        cut = text if len(text) <= 400 else f"{text[:400]}... ({len(self.body)} bytes)"
        how = "" if self.encoding == "utf-8" else f" ({self.encoding})"
        if self.content_type != "application/json":
            how += f" ({self.content_type})"
        return f"Case({self.format}{how}: {cut})"


def _leaves(tree: Any, at: Path = ()) -> Iterator[tuple[Path, Any]]:
    """(path, node) for every node of a body, the root first (iterative: bodies can be deep)."""
    stack: list[tuple[Path, Any]] = [(at, tree)]
    while stack:
        path, node = stack.pop()
        yield path, node
        if isinstance(node, dict):
            stack.extend(((*path, k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend(((*path, i), v) for i, v in enumerate(node))


def _echo_values(tree: Any, is_name: Callable[[Path], bool], at: Path = ()) -> frozenset[str]:
    """The distinctive values in `tree` (found at `at` in the body): no error may show them."""
    found: set[str] = set()
    for path, node in _leaves(tree, at):
        if isinstance(node, Raw):
            found.update(node.values)
        elif isinstance(node, str):
            if not is_name(path):
                found.update(MARKER.findall(node))
        elif (text := _distinctive(node)) is not None:
            found.add(text)
    return frozenset(found)


# -- the reference decoder: what a body means, by the README's rules -----------------------


def shown(name: str) -> str:
    """A client-sent name as errors may quote it: ASCII-escaped, at most 64 characters."""
    text = name.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= 64 else text[:61] + "..."


@dataclass
class Reading:
    """The rows a body means (records keyed by the signature's names, where each came from),
    or the problems that make it invalid, each at its logical location."""

    records: list[Record] = field(default_factory=list)
    locs: list[Loc] = field(default_factory=list)
    problems: list[Loc] = field(default_factory=list)
    not_utf8: bool = False  # outside RFC 8259: refusing the body as a whole is right too
    binary: bool = False  # asks for V2's binary data extension: 415 is right too

    def problem(self, loc: Loc) -> None:
        self.problems.append(loc)

    def number(self, value: Any, loc: Loc) -> float | None:
        """A JSON number that rounds to a finite float64 (booleans are not numbers)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(loc)
            return None
        try:
            number = float(value)
        except OverflowError:  # an integer past the largest float
            number = math.inf
        if not math.isfinite(number):
            self.problem(loc)
            return None
        return number

    def record(self, record: Any, loc: Loc) -> None:
        """One object keyed by exactly the signature's names, each a number."""
        if not isinstance(record, dict):
            self.problem(loc)
            return
        before = len(self.problems)
        for name in FEATURES:
            if name not in record:
                self.problem((*loc, name))
        for key in record:
            if key not in FEATURES:
                self.problem((*loc, shown(key)))
        values = {n: self.number(record[n], (*loc, n)) for n in FEATURES if n in record}
        if len(self.problems) == before:
            self.records.append({n: v for n, v in values.items() if v is not None})
            self.locs.append(loc)

    def row(self, row: Any, columns: list[str], loc: Loc) -> None:
        """An array of values for `columns`, in that order."""
        if not isinstance(row, list) or len(row) != len(columns):
            self.problem(loc)
            return
        self.record(dict(zip(columns, row, strict=True)), loc)

    def batch(self, value: Any, loc: Loc) -> list[Any] | None:
        """An array of 1 to MAX_ROWS items."""
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_ROWS:
            self.problem(loc)
            return None
        return value


FORMAT_KEYS = ("records", "dataframe_split", "dataframe_records", "instances", "inputs")


def _read_records(reading: Reading, value: Any, key: str) -> None:
    for i, item in enumerate(reading.batch(value, (key,)) or []):
        reading.record(item, (key, i))


def _read_split(reading: Reading, value: Any, key: str) -> None:
    """`{"columns": [names] (absent or null: the signature's order), "data": [rows],
    "index": ...}`; the index labels rows and does not change what they mean."""
    if not isinstance(value, dict) or not set(value) <= {"columns", "data", "index"}:
        reading.problem((key,))
        return
    rows = reading.batch(value.get("data"), (key,))
    columns = value.get("columns")
    if columns is None:
        columns = list(FEATURES)
    elif not isinstance(columns, list) or sorted(columns, key=str) != sorted(FEATURES):
        reading.problem((key, "columns"))
        return
    for i, row in enumerate(rows or []):
        reading.row(row, columns, (key, i))


def _read_tensor(reading: Reading, value: Any, key: str) -> None:
    """`instances` / `inputs`: records, rows in the signature's order, a dict of equally long
    columns, or one record as a dict."""
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        n = len(next(iter(value.values())))
        if set(value) != set(FEATURES) or any(len(v) != n for v in value.values()):
            reading.problem((key,))
        elif not 1 <= n <= MAX_ROWS:
            reading.problem((key,))
        else:
            for i in range(n):
                reading.record({name: value[name][i] for name in FEATURES}, (key, i))
        return
    if isinstance(value, dict):
        reading.record(value, (key,))
        return
    items = reading.batch(value, (key,)) or []
    if items and isinstance(items[0], list):
        for i, item in enumerate(items):
            reading.row(item, list(FEATURES), (key, i))
    else:
        for i, item in enumerate(items):
            reading.record(item, (key, i))


_READERS: dict[str, Callable[[Reading, Any, str], None]] = {
    "records": _read_records,
    "dataframe_records": _read_records,
    "dataframe_split": _read_split,
    "instances": _read_tensor,
    "inputs": _read_tensor,
}


def _parsed(body: bytes) -> tuple[Reading, Any]:
    """The body as JSON (a problem at () if it is not), and whether it is UTF-8."""
    reading = Reading()
    try:
        # UTF-16 of ASCII text decodes as UTF-8 too (NUL bytes are valid): ask json which
        # encoding it would read the body in.
        reading.not_utf8 = body.startswith(codecs.BOM_UTF8) or (
            json.detect_encoding(body) != "utf-8"
        )
        body.decode("utf-8")
    except UnicodeDecodeError:
        reading.not_utf8 = True
    try:
        # Python's json reads UTF-16 and UTF-32 too; NaN and Infinity parse (and are refused
        # as values below).
        doc = json.loads(body)
    except (ValueError, RecursionError):
        reading.problem(())
        return reading, None
    return reading, doc


def read_predict(body: bytes) -> Reading:
    """What a /predict body means: one record, or one format key (plus `params`, absent, null
    or {}: the model takes none) holding the rows."""
    reading, doc = _parsed(body)
    if reading.problems:
        return reading
    if not isinstance(doc, dict) or not doc:
        reading.problem(())
        return reading
    keys = [k for k in FORMAT_KEYS if k in doc]
    if not keys:
        reading.record(doc, ())
        return reading
    if len(keys) > 1 or not set(doc) <= {keys[0], "params"}:
        reading.problem(())
        return reading
    if doc.get("params") is not None and doc["params"] != {}:
        reading.problem(("params",))
    _READERS[keys[0]](reading, doc[keys[0]], keys[0])
    return reading


# -- the reference decoder of V2 inference requests, by the protocol's rules and the README's --

V2_DATATYPES = {
    "BOOL": "bool", "BYTES": "bytes",
    **{f"{s}INT{b}": "int" for s in ("", "U") for b in (8, 16, 32, 64)},
    **{f"FP{b}": "float" for b in (16, 32, 64)},
}  # fmt: skip
"""The protocol's datatypes sent as JSON (BF16 is binary only), by the JSON values they hold;
the model's features are FP64: integer and floating datatypes fit them, BOOL and BYTES not."""
V2_KEYS = {"id", "parameters", "inputs", "outputs", "model_name", "model_version"}
V2_TENSOR_KEYS = {"name", "shape", "datatype", "parameters", "data"}
V2_REFUSED_EXTENSIONS = {"shared_memory_region", "classification"}  # 400; binary_data_size 415


def _v2_parameters(reading: Reading, value: Any, loc: Loc) -> None:
    """Absent, or an object of strings, numbers and booleans; a binary-data parameter asks
    for the binary extension (415), the other extensions' are refused (400)."""
    if value is None:
        return
    if not isinstance(value, dict):
        reading.problem(loc)
        return
    for key, item in value.items():
        if item is None or isinstance(item, list | dict) or key in V2_REFUSED_EXTENSIONS:
            reading.problem(loc)
        elif key == "binary_data_size":
            reading.binary = True


def _v2_outputs(reading: Reading, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        reading.problem(("outputs",))
        return
    for item in value:
        if not isinstance(item, dict) or not set(item) <= {"name", "parameters"}:
            reading.problem(("outputs",))
            continue
        _v2_parameters(reading, item.get("parameters"), ("outputs",))
        if item.get("name") != "predict":
            reading.problem(("outputs",))


def _v2_tensor(reading: Reading, tensor: Any, i: int) -> bool:
    """Whether input `i` is a tensor: an object of the protocol's keys, with a name, a
    datatype, a shape of non-negative integers and a data array."""
    before = len(reading.problems)
    if not isinstance(tensor, dict) or not set(tensor) <= V2_TENSOR_KEYS:
        reading.problem(("inputs", i))
        return False
    _v2_parameters(reading, tensor.get("parameters"), ("inputs", i))
    shape = tensor.get("shape")
    if not (
        isinstance(tensor.get("name"), str)
        and isinstance(tensor.get("datatype"), str)
        and tensor["datatype"] in V2_DATATYPES
        and isinstance(shape, list)
        and all(type(d) is int and d >= 0 for d in shape)
        and isinstance(tensor.get("data"), list)
    ):
        reading.problem(("inputs", i))
    return len(reading.problems) == before


def _v2_values(reading: Reading, values: list[Any], datatype: str, loc: Loc) -> list[Any]:
    """The values as numbers: JSON integers for an integer datatype (within 64 bits, the
    widest integer datatype), numbers for a floating one, finite as float64 (a feature's
    type); BOOL and BYTES do not fit a feature."""
    family = V2_DATATYPES[datatype]
    if family not in ("int", "float"):
        reading.problem(loc)
        return []
    numbers = []
    for value in values:
        if family == "int" and (
            isinstance(value, float | bool)
            or (isinstance(value, int) and not -(2**63) <= value < 2**64)
        ):
            reading.problem(loc)
        numbers.append(reading.number(value, loc))
    return numbers


def _v2_matrix(reading: Reading, tensor: dict[str, Any]) -> None:
    """One [n, 4] tensor: the features in the signature's order, data nested or flat."""
    loc: Loc = ("inputs", 0)
    n, width = tensor["shape"]
    data = tensor["data"]
    if width != len(FEATURES) or not 1 <= n <= MAX_ROWS:
        reading.problem(loc)
        return
    nested = len(data) == n and isinstance(data[0], list)
    if nested and all(isinstance(row, list) and len(row) == width for row in data):
        rows = data
    elif not nested and len(data) == n * width:
        rows = [data[i : i + width] for i in range(0, n * width, width)]
    else:
        reading.problem(loc)
        return
    before = len(reading.problems)
    values = [_v2_values(reading, row, tensor["datatype"], loc) for row in rows]
    if len(reading.problems) == before:
        for r, row in enumerate(values):
            reading.records.append(dict(zip(FEATURES, row, strict=True)))
            reading.locs.append(("inputs", 0, "data", r if nested else r * width))


def _v2_columns(reading: Reading, tensors: list[dict[str, Any]]) -> None:
    """One tensor per feature, in any order, of shape [n] or [n, 1] (data flat, or nested
    for [n, 1]), as many rows each as inputs[0]."""
    first = tensors[0]["shape"]
    n = first[0] if first else 0
    columns: dict[str, list[Any]] = {}
    before = len(reading.problems)
    for i, tensor in enumerate(tensors):
        shape, data = tensor["shape"], tensor["data"]
        if tensor["name"] not in FEATURES or tensor["name"] in columns:
            reading.problem(("inputs", i))
            continue
        if not (shape == [n] or shape == [n, 1]) or not 1 <= n <= MAX_ROWS or len(data) != n:
            reading.problem(("inputs", i))
            continue
        if len(shape) == 2 and isinstance(data[0], list):
            if not all(isinstance(row, list) and len(row) == 1 for row in data):
                reading.problem(("inputs", i))
                continue
            data = [row[0] for row in data]
        columns[tensor["name"]] = _v2_values(reading, data, tensor["datatype"], ("inputs", i))
    if len(reading.problems) == before and set(columns) != set(FEATURES):
        reading.problem(("inputs",))
    if len(reading.problems) == before:
        for r in range(n):
            reading.records.append({name: columns[name][r] for name in FEATURES})
            reading.locs.append(("inputs", 0, "data", r))


def read_v2(body: bytes) -> Reading:
    """What a V2 inference request means: `inputs` holding one tensor per feature or one
    [n, 4] tensor; `id` a string, `outputs` only `predict`, `parameters` simple values,
    `model_name` / `model_version` strings (the path names the model)."""
    reading, doc = _parsed(body)
    if reading.problems:
        return reading
    if not isinstance(doc, dict) or not set(doc) <= V2_KEYS:
        reading.problem(())
        return reading
    ident = doc.get("id")
    if ident is not None and (not isinstance(ident, str) or _lone_surrogate(ident)):
        reading.problem(("id",))
    for key in ("model_name", "model_version"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            reading.problem((key,))
    _v2_parameters(reading, doc.get("parameters"), ("parameters",))
    _v2_outputs(reading, doc.get("outputs"))
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        reading.problem(("inputs",))
        return reading
    tensors = [_v2_tensor(reading, tensor, i) for i, tensor in enumerate(inputs)]
    if reading.problems or reading.binary or not all(tensors):
        return reading
    if len(inputs) == 1 and len(inputs[0]["shape"]) == 2 and inputs[0]["name"] not in FEATURES:
        _v2_matrix(reading, inputs[0])
    else:
        _v2_columns(reading, inputs)
    return reading


def _lone_surrogate(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


# -- the table of formats -------------------------------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """A lane: where bodies go, how the reference decoder reads them, where the answer's
    predictions are, which value positions hold names (errors may quote those), its status
    for invalid input, and its error shape: `error` checks an answer is one and returns what
    `names` reads to tell whether it names a location."""

    name: str
    path: str
    read: Callable[[bytes], Reading]
    predictions: Callable[[Any], list[Any] | None]
    is_name: Callable[[Path], bool]
    invalid: int
    error: Callable[[Any, int], Any]
    names: Callable[[Any, Loc], bool]


def _predict_error(body: Any, status: int) -> list[dict[str, Any]]:
    """`{"error": {"status", "code", "message", "details"}}`, each detail `{"loc", "msg"}`,
    at least one; returns the details."""
    error = body["error"]
    assert set(body) == {"error"}
    assert set(error) == {"status", "code", "message", "details"}
    assert error["status"] == status
    assert all(isinstance(error[k], str) and error[k] for k in ("code", "message"))
    assert isinstance(error["details"], list) and error["details"]
    for d in error["details"]:
        assert isinstance(d, dict) and set(d) == {"loc", "msg"}
        assert isinstance(d["msg"], str) and d["msg"] and isinstance(d["loc"], list)
        assert all(type(p) in (str, int) for p in d["loc"])
    return list(error["details"])


PREDICT = Protocol(
    name="/predict",
    path="/predict",
    read=read_predict,
    predictions=lambda answer: answer["predictions"],
    is_name=lambda path: path[:2] == ("dataframe_split", "columns") and len(path) == 3,
    invalid=422,
    error=_predict_error,
    names=lambda details, where: any(_contains(d["loc"], where) for d in details),
)


def _v2_error(body: Any, status: int) -> str:
    """`{"error": "<message>"}`; returns the message."""
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    return str(body["error"])


def _v2_names(message: str, where: Loc) -> bool:
    """Whether the message starts with the location (`inputs[0].data[3]: ...`)."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where).lstrip(".")
    return not text or (message.startswith(text) and message[len(text) : len(text) + 1] in ".[:")


def _v2_predictions(answer: Any) -> list[Any] | None:
    """The one output, `predict`, with a value per row."""
    (output,) = answer["outputs"]
    if output["name"] != "predict" or output["shape"] != [len(output["data"])]:
        return None
    return list(output["data"])


V2 = Protocol(
    name="V2 infer",
    path="/v2/models/sk_model/infer",
    read=read_v2,
    predictions=_v2_predictions,
    is_name=lambda path: False,
    invalid=400,
    error=_v2_error,
    names=_v2_names,
)


@dataclass(frozen=True)
class Format:
    """One accepted body format: the protocol (lane) it goes through, and how to build a valid
    body from records (`draw` picks among equivalent spellings: key order, columns given or
    not, an index or not)."""

    name: str
    protocol: Protocol
    build: Callable[[Draw, list[Record]], Any]
    single: bool = False  # carries exactly one record
    integral: bool = False  # its records' values are whole numbers (integer tensors)


ORDERS = st.permutations(FEATURES)


def _keyed(order: tuple[str, ...], records: list[Record]) -> list[dict[str, float]]:
    return [{name: record[name] for name in order} for record in records]


def _split(draw: Draw, records: list[Record]) -> dict[str, Any]:
    columns = draw(st.none() | ORDERS)
    body: dict[str, Any] = {
        "columns": list(columns) if columns else None,
        "data": [[r[c] for c in columns or FEATURES] for r in records],
    }
    if columns is None and draw(st.booleans()):
        del body["columns"]
    if draw(st.booleans()):
        body["index"] = list(range(len(records)))
    return {"dataframe_split": body}


V2_PARAMETERS = st.sampled_from(
    [{}, {"content_type": "np"}, {"priority": 1, "binary_data_output": False}, {"x": "y"}]
)
V2_OUTPUTS = st.sampled_from(
    [[], [{"name": "predict"}], [{"name": "predict", "parameters": {"binary_data": False}}]]
)


def _build_v2_request(draw: Draw, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """An inference request with `inputs`; now and then an id, parameters, the outputs
    asked for, the model's name (as the KServe SDK sends it), its tensors' parameters."""
    body: dict[str, Any] = {}
    extras = draw(INDEX) if draw(INDEX) % 2 else 0  # else a plain request, as most clients
    if extras & 1:
        body["id"] = draw(markers)  # echoed in the answer, never in an error
    if extras & 2:
        body["parameters"] = draw(V2_PARAMETERS)
    if extras & 4:
        inputs = [{**t, "parameters": draw(V2_PARAMETERS)} for t in inputs]
    body["inputs"] = inputs
    if extras & 8:
        body["outputs"] = draw(V2_OUTPUTS)
    if extras & 16:
        body["model_name"] = "sk_model"
    return body


def _build_v2_columns(draw: Draw, records: list[Record], datatypes: list[str]) -> dict[str, Any]:
    """One tensor per feature, in any order: [n] with flat data, or [n, 1] flat or nested."""
    n, rank_2 = len(records), draw(st.booleans())
    inputs = []
    for name in draw(ORDERS):
        values = [r[name] for r in records]
        data = [[v] for v in values] if rank_2 and draw(st.booleans()) else values
        shape = [n, 1] if rank_2 else [n]
        inputs.append(
            {"name": name, "datatype": _pick(draw, datatypes), "shape": shape, "data": data}
        )
    return _build_v2_request(draw, inputs)


def _build_v2_matrix(draw: Draw, records: list[Record], datatypes: list[str]) -> dict[str, Any]:
    """One [n, 4] tensor, the features in the signature's order, data nested or flat."""
    rows = [[r[name] for name in FEATURES] for r in records]
    data = [v for row in rows for v in row] if draw(st.booleans()) else rows
    name = _pick(draw, ["input-0", "x", "INPUT__0"])
    tensor = {"name": name, "datatype": _pick(draw, datatypes), "shape": [len(rows), 4]}
    return _build_v2_request(draw, [{**tensor, "data": data}])


FLOATING, INTEGER = ["FP64", "FP32"], ["INT64", "INT32"]


def _build_v2_integers(draw: Draw, records: list[Record]) -> dict[str, Any]:
    if draw(st.booleans()):
        return _build_v2_columns(draw, records, INTEGER)
    return _build_v2_matrix(draw, records, INTEGER)


# A new wire format is one more entry; a new protocol is one more Protocol, with its reader.
FORMATS = {
    f.name: f
    for f in [
        Format("single", PREDICT, lambda d, rs: _keyed(d(ORDERS), rs)[0], single=True),
        Format("records", PREDICT, lambda d, rs: {"records": _keyed(d(ORDERS), rs)}),
        Format("dataframe_split", PREDICT, _split),
        Format(
            "dataframe_records",
            PREDICT,
            lambda d, rs: {"dataframe_records": _keyed(d(ORDERS), rs)},
        ),
        Format("instances_objects", PREDICT, lambda d, rs: {"instances": [dict(r) for r in rs]}),
        Format(
            "instances_rows",
            PREDICT,
            lambda d, rs: {"instances": [[r[n] for n in FEATURES] for r in rs]},
        ),
        Format("inputs_records", PREDICT, lambda d, rs: {"inputs": [dict(r) for r in rs]}),
        Format(
            "inputs_columns",
            PREDICT,
            lambda d, rs: {"inputs": {n: [r[n] for r in rs] for n in d(ORDERS)}},
        ),
        Format("v2_columns", V2, lambda d, rs: _build_v2_columns(d, rs, FLOATING)),
        Format("v2_matrix", V2, lambda d, rs: _build_v2_matrix(d, rs, FLOATING)),
        Format("v2_integers", V2, _build_v2_integers, integral=True),
    ]
}


# -- mutations ------------------------------------------------------------------------------

_FLOAT_MAX = 1.7976931348623157e308
_HALFWAY = 2**1024 - 2**970  # the smallest integer that rounds to infinity, not to the max
VOCABULARY = (
    *FEATURES,
    *FORMAT_KEYS,
    "params",
    "columns",
    "data",
    "index",
    *V2_KEYS,
    *V2_TENSOR_KEYS,
    "binary_data_size",
    "classification",
    "predict",
    "FP64",
    "FP32",
    "INT64",
    "INT32",
    "BOOL",
    "BYTES",
    "BF16",
    "FP16",
    "UINT8",
)
# fmt: off
ODD_FLOATS = (0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-320, 1e308, -1e308,
              _FLOAT_MAX, -_FLOAT_MAX, 1.7e308, 9007199254740993.0, math.nan, math.inf,
              -math.inf)
ODD_INTEGERS = (2**53 + 1, 2**63 - 1, -(2**63), 2**63, 2**64, 10**30, 10**308, 10**309,
                -(10**400), int(_FLOAT_MAX), int(_FLOAT_MAX) + 1, _HALFWAY - 1, _HALFWAY)
ODD_LITERALS = tuple(Raw(t) for t in ("1e999", "-1e999", "1e-999", "-0", "-0.0e-0", "1E+2")) + (
    Raw("123456789012345678901234567890e-300", ("123456789012345678901234567890",)),
)
ODD_STRINGS = ("", " ", "3.3", "6.7", "NaN", "Infinity", "true", "null", "1e999", "\x00",
               "\ud800", *VOCABULARY)
# fmt: on

markers = st.integers(10**6, 10**7 - 1).map(lambda n: f"vq{n}")
numbers: st.SearchStrategy[Any] = st.one_of(
    st.floats(0.0, 8.0),  # plausible, with many digits
    st.floats(allow_nan=False, allow_infinity=False),  # huge, tiny, subnormal, -0.0
    st.sampled_from(ODD_FLOATS),
    st.integers(-(2**70), 2**70),
    st.sampled_from(ODD_INTEGERS),
    st.sampled_from(ODD_LITERALS),  # out of any float's range, and spellings json.dumps avoids
    st.integers(-1, 6),  # a shape one off, a row count that is another tensor's
)
strings: st.SearchStrategy[str] = st.one_of(
    st.builds(lambda m, t: m + t, markers, st.text(max_size=6)),
    st.sampled_from(ODD_STRINGS),
    st.builds(lambda m, n: m + "x" * n, markers, st.sampled_from([100, 20_000, 40_000])),
)
keys: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(VOCABULARY),
    st.sampled_from(VOCABULARY).flatmap(
        lambda k: st.sampled_from([k.upper(), k.title(), k.swapcase(), k + " ", k[:-1]])
    ),
    st.integers(10**6, 10**7 - 1).map(lambda n: f"kq{n}"),
    st.text(max_size=8),
    st.just("kq" + "\u00e9" * 100),  # quoted escaped and cut short
    st.sampled_from(["\ud800", "\x00", ""]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)


def _deep(depth: int, opener: str, closer: str) -> Raw:
    leaf = "3.14159265358979"
    return Raw(opener * depth + leaf + closer * depth, (leaf,))


DEPTHS = st.sampled_from([3, 40, 900, 1100, 5000])  # parsers stop near 1,000 levels
junk: st.SearchStrategy[Any] = st.one_of(  # what any element may be replaced by
    st.none(),
    st.booleans(),
    numbers,
    strings,
    st.lists(scalars, max_size=5),
    st.dictionaries(keys, scalars, max_size=4),
    DEPTHS.map(lambda d: _deep(d, "[", "]")),
    DEPTHS.map(lambda d: _deep(d, '{"a":', "}")),
    st.sampled_from([dict(IRIS_EXAMPLE), list(IRIS_EXAMPLE.values())]),  # a record for a row...
)
LONG = st.sampled_from([MAX_ROWS + 1, 2 * MAX_ROWS, 1_000, 3_000])  # past rows; past bytes
# Strategies are built once: building one per draw cost more than the draws.
INDEX = st.integers(0, 2**16)
MUTATIONS = st.sampled_from([0, 1, 1, 1, 2, 3])
# Where a plausible flower lies, per feature (iris's ranges): all three classes come up.
RANGES = dict(zip(FEATURES, [(4.3, 7.9), (2.0, 4.4), (1.0, 6.9), (0.1, 2.5)], strict=True))
PARAMS: st.SearchStrategy[Any] = st.sampled_from([None, {}]) | junk
LEAF_OPS = st.sampled_from(["replace"] * 3 + ["nest"])
EMPTY_OPS = st.sampled_from(["replace"] * 3 + ["nest", "grow"])
DICT_OPS = st.sampled_from(["replace"] * 3 + ["nest", "drop", "add", "rename", "empty", "long"])
LIST_OPS = st.sampled_from(
    ["replace"] * 3 + ["nest", "drop", "duplicate", "append", "empty", "long"]
)
NESTINGS = st.sampled_from(["[]", "[[]]", "{}"])
# The body as bytes: UTF-8 mostly; else another encoding Python's json reads (RFC 8259 says
# UTF-8, without a byte order mark), or cut short, or with a byte that is not UTF-8.
# The Content-Type header (V2): JSON mostly, else a media type it must refuse (415).
MEDIA_TYPES = st.sampled_from(
    ["application/json"] * 20
    + ["application/json; charset=utf-8", "application/vnd.x+json", "text/plain",
       "application/octet-stream", "application/x-www-form-urlencoded"]
)  # fmt: skip
ENCODINGS = st.sampled_from(
    ["utf-8"] * 30 + ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "cut", "0xff"]
)


def _pick(draw: Draw, items: list[Any]) -> Any:
    """One of `items` (shrinking towards the first)."""
    return items[draw(INDEX) % len(items)]


def _get(tree: Any, path: Path) -> Any:
    for step in path:
        tree = tree[step]
    return tree


def _set(tree: Any, path: Path, value: Any) -> Any:
    """A copy of `tree` with the node at `path` replaced (nothing is changed in place)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {k: (_set(v, rest, value) if k == head else v) for k, v in tree.items()}
    return [_set(v, rest, value) if i == head else v for i, v in enumerate(tree)]


def _long(node: list[Any] | dict[str, Any], n: int, values: frozenset[str]) -> Raw:
    """`node` grown to `n` items (its own, repeated; new keys for an object), as JSON text:
    a Python tree that size would make every later step slow."""
    if isinstance(node, dict):
        parts = [f"{json.dumps(k)}:{dumps(v)}" for k, v in node.items()]
        parts += [f'"kq{i:07d}":1.5' for i in range(n)]
        return Raw("{" + ",".join(parts) + "}", tuple(values))
    parts = [dumps(v) for v in node]
    return Raw("[" + ",".join(parts[i % len(parts)] for i in range(n)) + "]", tuple(values))


def _mutated(draw: Draw, node: Any, values: Callable[[Any], frozenset[str]]) -> Any:
    """`node` changed in one way: replaced by anything (most often), or a container reshaped.
    `values` tells the echo check's values inside a node at this place."""
    if not isinstance(node, dict | list):
        op = draw(LEAF_OPS)
    else:
        op = draw(EMPTY_OPS if not node else DICT_OPS if isinstance(node, dict) else LIST_OPS)
    if op == "grow":
        op = "add" if isinstance(node, dict) else "append"
    if op == "replace":
        return draw(junk)
    if op == "nest":  # a record inside an array, a value inside an object...
        nesting = draw(NESTINGS)
        return {draw(keys): node} if nesting == "{}" else [[node]] if nesting == "[[]]" else [node]
    if op == "empty":
        return type(node)()
    if op == "long":
        return _long(node, draw(LONG), values(node))
    if isinstance(node, dict):
        items = list(node.items())
        if op == "add":
            return {**node, draw(keys): draw(junk)}
        i = draw(INDEX) % len(items)
        if op == "drop":
            return dict(items[:i] + items[i + 1 :])
        old = items[i][0]
        new = draw(keys | st.sampled_from([old.upper(), old.title(), old.swapcase()]))
        return {(new if k == old else k): v for k, v in items}  # rename
    assert isinstance(node, list)
    if op == "append":
        return [*node, draw(junk)]
    i = draw(INDEX) % len(node)
    if op == "drop":
        return node[:i] + node[i + 1 :]
    return node[: i + 1] + node[i:]  # duplicate: a row one value longer, a batch one longer


def _plausible(rng: random.Random, low: float, high: float) -> float:
    """A value in range with many digits, now and then a whole number (a JSON integer)."""
    value = rng.uniform(low, high)
    return round(value) if rng.random() < 0.1 else value


@st.composite
def valid_bodies(draw: Draw, fmt: Format) -> tuple[list[Record], Any]:
    """1 to 6 plausible records, and a body in `fmt` that carries them."""
    # The values come from a seeded generator: drawing each through Hypothesis cost more than
    # the request, and the mutations are what is searched for.
    rng = random.Random(draw(INDEX))
    n = 1 if fmt.single else 1 + draw(INDEX) % 6
    records = [{k: _plausible(rng, *RANGES[k]) for k in FEATURES} for _ in range(n)]
    if fmt.integral:
        records = [{k: round(v) for k, v in r.items()} for r in records]
    return records, fmt.build(draw, records)


@st.composite
def cases(draw: Draw, fmt: Format) -> Case:
    """A valid body in `fmt`, with `params` one time in six, then 0 to 3 mutations, each at a
    level drawn first (so the root is as likely to change as a leaf)."""
    _, tree = draw(valid_bodies(fmt))
    if fmt.protocol is PREDICT and isinstance(tree, dict) and draw(INDEX) % 6 == 0:
        tree = {**tree, "params": draw(PARAMS)}
    is_name = fmt.protocol.is_name
    for _ in range(draw(MUTATIONS)):
        paths = [p for p, node in _leaves(tree) if not isinstance(node, Raw)]
        if not paths:  # the whole body is raw text by now
            break
        depth = _pick(draw, sorted({len(p) for p in paths}))
        path = _pick(draw, [p for p in paths if len(p) == depth])
        values = functools.partial(_echo_values, is_name=is_name, at=path)
        node = _mutated(draw, _get(tree, path), values)
        tree = _set(tree, path, node)
    text, encoding = dumps(tree), draw(ENCODINGS)
    if encoding in ("cut", "0xff"):
        body = text.encode()
        at = draw(INDEX) % len(body)
        body = body[:at] if encoding == "cut" else body[:at] + b"\xff" + body[at:]
    else:
        body = text.encode(encoding)
    media = draw(MEDIA_TYPES) if fmt.protocol is V2 else "application/json"
    return Case(fmt.name, body, _echo_values(tree, is_name), encoding, media)


# -- the properties -------------------------------------------------------------------------


class Unexpected(AssertionError):
    """An answer that breaks a property; `kind` groups failures in the report."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def expect(condition: bool, kind: str, message: str) -> None:
    if not condition:
        raise Unexpected(kind, message)


def _contains(loc: list[Any], where: Loc) -> bool:
    """Whether `where` appears in `loc` in order (same types: 1 is not "1" nor True)."""
    parts = iter(loc)
    return all(any(type(p) is type(w) and p == w for p in parts) for w in where)


def _json_media(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def check_error(response: Any, case: Case, protocol: Protocol) -> Any:
    """The protocol's error shape, echoing no value; returns what `protocol.names` reads."""
    text = response.text
    try:
        assert response.headers["content-type"].startswith("application/json")
        error = protocol.error(response.json(), response.status_code)
    except (AssertionError, ValueError, KeyError, TypeError):
        raise Unexpected("not the error shape", text) from None
    echoed = sorted(v[:40] for v in case.values if v in text)
    expect(not echoed, "echoes a sent value", f"{echoed} in {text}")
    return error


def _names_one_of(protocol: Protocol, error: Any, wheres: list[Loc]) -> bool:
    return any(protocol.names(error, where) for where in wheres)


def _refused(reference: Callable[[list[Record]], list[Any]], record: Record) -> bool:
    try:
        reference([record])
    except Exception:
        return True
    return False


def verify(
    client: TestClient,
    reference: Callable[[list[Record]], list[Any]],
    fmt: Format,
    case: Case,
    tally: Counter[str],
) -> None:
    """Send `case` and check its answer against every property (see the module docstring)."""
    protocol = fmt.protocol
    headers = {"content-type": case.content_type}
    response = client.post(protocol.path, content=case.body, headers=headers)
    status = response.status_code
    tally[f"{fmt.name} {status}"] += 1
    expect(status < 500, f"{status}", response.text)
    details = check_error(response, case, protocol) if status != 200 else []
    if not _json_media(case.content_type):
        expect(status == 415, "not JSON, not 415", f"{status}: {response.text}")
        return
    if len(case.body) > MAX_BODY:
        expect(status == 413, "over the byte limit, not 413", f"{status}: {response.text}")
        return
    reading = protocol.read(case.body)
    invalid = protocol.invalid
    if reading.not_utf8 and status == invalid:
        return  # refused as a whole: as right as reading it right (which a 200 must do)
    if reading.binary and status == 415:
        return  # asks for the binary extension, which is not implemented
    if reading.problems or reading.binary:
        where = f"problems at {reading.problems}, binary: {reading.binary}"
        expect(status == invalid, f"invalid, not {invalid}", f"{where}: {status}")
        expect(
            _names_one_of(protocol, details, reading.problems),
            "names no location of a problem",
            f"problems at {reading.problems}, details {details}",
        )
        return
    try:
        expected = reference(reading.records)
    except Exception:  # valid by the signature, yet the model cannot predict on some record
        failing = [
            loc
            for record, loc in zip(reading.records, reading.locs, strict=True)
            if _refused(reference, record)
        ] or [()]
        refused = f"pyfunc refuses it, not {invalid}"
        expect(status == invalid, refused, f"records at {failing}: {status}")
        expect(
            _names_one_of(protocol, details, failing),
            "names no record the model refuses",
            f"records at {failing}, details {details}",
        )
        return
    expect(status == 200, "valid, not 200", f"{status}: {response.text}")
    try:
        predictions = protocol.predictions(response.json())
    except (ValueError, KeyError, TypeError):
        predictions = None
    expect(
        predictions == expected,
        "predictions differ from pyfunc's",
        f"{predictions} != {expected} ({len(expected)} rows)",
    )


# -- the tests --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_client(serve: AppFactory) -> Iterator[TestClient]:
    """The real app on the trained model, with limits small enough to reach quickly."""
    with serve(max_request_rows=MAX_ROWS, max_body_bytes=MAX_BODY) as client:
        signature = client.get("/model-info").json()["signature"]["inputs"]
        assert [c["name"] for c in signature] == list(FEATURES)
        assert {c["type"] for c in signature} == {"double"}
        yield client


@pytest.fixture(scope="module")
def tally(figures: list[str]) -> Iterator[Counter[str]]:
    """Bodies sent, by format and status; the total goes to the terminal summary."""
    counts: Counter[str] = Counter()
    start, cpu = time.monotonic(), time.process_time()
    yield counts
    statuses: Counter[str] = Counter()
    for key, n in counts.items():
        statuses[key.split()[1]] += n
    by_status = ", ".join(f"{n} x {s}" for s, n in sorted(statuses.items()))
    figures.append(
        f"structure fuzz of /predict and V2 infer: {counts.total()} bodies in {len(FORMATS)}"
        " formats "
        f"({by_status}) in {time.monotonic() - start:.1f}s "
        f"({time.process_time() - cpu:.1f}s of CPU, the app's threads included)"
    )


def _report(name: str, sent: int, failures: dict[str, list[tuple[Case, str]]]) -> str:
    """Each kind of failure once, with how often it came and its shortest body."""
    lines = [f"{name}: {len(failures)} kind(s) of failure in {sent} bodies"]
    for kind, seen in sorted(failures.items()):
        case, message = min(seen, key=lambda s: len(s[0].body))
        lines.append(f"- {kind} ({len(seen)} bodies), shortest: {case!r}\n    {message[:300]}")
    return "\n".join(lines)


@pytest.mark.parametrize("name", list(FORMATS))
def test_no_body_of_any_shape_fails_the_service(
    name: str,
    fuzz_client: TestClient,
    reference: Callable[[list[Record]], list[Any]],
    tally: Counter[str],
) -> None:
    """Every body is sent and checked; all failures are reported together, each kind with
    its shortest body (Hypothesis would stop at the first one and hide the others)."""
    fmt = FORMATS[name]
    failures: dict[str, list[tuple[Case, str]]] = {}
    before = tally.total()

    @given(case=cases(fmt))
    @seed(zlib.crc32(name.encode()))  # fixed, and not the same bodies for every format
    @settings(
        max_examples=BODIES_PER_FORMAT,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case) -> None:
        try:
            verify(fuzz_client, reference, fmt, case, tally)
        except Unexpected as failure:
            failures.setdefault(failure.kind, []).append((case, str(failure)))

    run()
    sent = tally.total() - before
    assert not failures, _report(name, sent, failures)
    assert sent >= MIN_BODIES // len(FORMATS), f"only {sent} bodies sent"


@pytest.mark.parametrize("name", list(FORMATS))
def test_the_reference_decoder_reads_back_every_format(name: str) -> None:
    """The oracle's own check: each format's valid bodies read back to the records they carry
    (a new entry in FORMATS is checked here before its bodies are trusted as an oracle)."""
    fmt = FORMATS[name]

    @given(valid=valid_bodies(fmt))
    @seed(zlib.crc32(name.encode()))
    @settings(max_examples=100, database=None, deadline=None)
    def run(valid: tuple[list[Record], Any]) -> None:
        records, tree = valid
        reading = fmt.protocol.read(dumps(tree).encode())
        assert reading.problems == []
        assert reading.records == records
        assert all(list(r) == list(FEATURES) for r in reading.records)

    run()


ROW = list(IRIS_EXAMPLE.values())
# Bodies the fuzzing found (or was written for): ones that once answered 500, and the
# shapes next to them; each must meet the same properties.
FOUND_BODIES: dict[str, tuple[str, str]] = {
    "records: [null]": ('{"records": [null]}', "utf-8"),
    "inputs: [null]": ('{"inputs": [null]}', "utf-8"),
    "instances: [null]": ('{"instances": [null]}', "utf-8"),
    "dataframe_records: [null]": ('{"dataframe_records": [null]}', "utf-8"),
    "null among records": (json.dumps({"records": [IRIS_EXAMPLE, None, IRIS_EXAMPLE]}), "utf-8"),
    "null among rows": (json.dumps({"instances": [ROW, None]}), "utf-8"),
    "null split row": ('{"dataframe_split": {"data": [null]}}', "utf-8"),
    "over the byte limit": (json.dumps({"records": [IRIS_EXAMPLE] * 400}), "utf-8"),
    "a boolean in UTF-16": (json.dumps({"instances": [[True, *ROW[1:]]]}), "utf-16"),
    "a boolean in UTF-32": (json.dumps({**IRIS_EXAMPLE, "petal_width": False}), "utf-32-le"),
    "a record the model cannot take": (
        json.dumps({"records": [IRIS_EXAMPLE, {**IRIS_EXAMPLE, "sepal_width": 1.7e308}]}),
        "utf-8",
    ),
}


@pytest.mark.parametrize("name", list(FOUND_BODIES))
def test_the_bodies_found_so_far(
    name: str, fuzz_client: TestClient, reference: Callable[[list[Record]], list[Any]]
) -> None:
    text, encoding = FOUND_BODIES[name]
    body = text.encode(encoding)
    values = _echo_values(json.loads(body), PREDICT.is_name)
    verify(
        fuzz_client, reference, FORMATS["records"], Case(name, body, values, encoding), Counter()
    )


def _v2_plain(rows: list[list[Any]], **changes: Any) -> dict[str, Any]:
    """A plain V2 request (one [n] FP64 tensor per feature, nothing else); `changes` (by
    feature) replace keys of that feature's tensor."""
    tensors = [
        {"name": n, "datatype": "FP64", "shape": [len(rows)], "data": [r[i] for r in rows]}
        for i, n in enumerate(FEATURES)
    ]
    return {"inputs": [{**t, **changes.get(str(t["name"]), {})} for t in tensors]}


TOO_BIG = {**IRIS_EXAMPLE, "sepal_width": 1.7e308}  # valid, but overflows once scaled
# V2 bodies written for what a fuzz run reaches rarely: the one-pass read of plain requests
# meeting a shape that equals [1] without being it, a datatype no table can look up (answered
# 500 once), a lone row or one row of several that the model cannot take, the binary
# extension.
FOUND_V2_BODIES: dict[str, Any] = {
    "shape [true] in a later tensor": _v2_plain([ROW], petal_width={"shape": [True]}),
    "shape [1.0] in a later tensor": _v2_plain([ROW], sepal_width={"shape": [1.0]}),
    "shape [1.0] first": _v2_plain([ROW], sepal_length={"shape": [1.0]}),
    "a datatype that is an array": _v2_plain([ROW], petal_length={"datatype": ["FP64"]}),
    "a datatype that is an object": _v2_plain([ROW], sepal_length={"datatype": {"a": 1}}),
    "BOOL data for a feature": _v2_plain([ROW], sepal_length={"datatype": "BOOL"}),
    "a lone row the model cannot take": _v2_plain([list(TOO_BIG.values())]),
    "a row of three the model cannot take": _v2_plain([ROW, list(TOO_BIG.values()), ROW]),
    "a lone flat [1, 4] row the model cannot take": {
        "inputs": [
            {"name": "x", "datatype": "FP64", "shape": [1, 4], "data": list(TOO_BIG.values())}
        ]
    },
    "a flat [2, 4] row the model cannot take": {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [*TOO_BIG.values(), *ROW]}
        ]
    },
    "binary data asked for": {**_v2_plain([ROW]), "parameters": {"binary_data_size": 32}},
}


@pytest.mark.parametrize("name", list(FOUND_V2_BODIES))
def test_the_v2_bodies_found_so_far(
    name: str, fuzz_client: TestClient, reference: Callable[[list[Record]], list[Any]]
) -> None:
    body = json.dumps(FOUND_V2_BODIES[name]).encode()
    values = _echo_values(json.loads(body), V2.is_name)
    verify(fuzz_client, reference, FORMATS["v2_columns"], Case(name, body, values), Counter())
