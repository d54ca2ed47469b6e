"""Where values are in an Open Inference Protocol (V2) request, for error messages: the schema
and the model name rows and inputs (`["inputs", 2, "petal_width"]`); the client sent tensors,
so an error names the value's position in them (`inputs[3].data[2]`)."""

from __future__ import annotations

from typing import Any, NamedTuple

LOC = ("inputs",)
"""Where the Rows a request becomes say they came from."""


class Place(NamedTuple):
    """Where values are in the request: input `tensor`, `width` values per row, nested as rows
    or flat."""

    tensor: int
    nested: bool
    width: int


Layout = dict[str, Place] | tuple[str, ...] | Place
"""Where a request's rows came from: each input's tensor (or only the inputs in the order
sent, when each is an [n] tensor of flat data), or the one [n, k] tensor."""


def data_loc(tensor: int, flat: int, nested: bool, width: int) -> list[Any]:
    """Where the `flat`-th value (row-major) of input `tensor` is in the body."""
    if nested:
        return ["inputs", tensor, "data", flat // width, flat % width]
    return ["inputs", tensor, "data", flat]


def position(
    layout: Layout, names: tuple[str, ...], loc: list[Any], one_row: bool
) -> list[Any] | None:
    """The position in the request of a schema's or model's location: `["inputs", row,
    input]` a value, `["inputs", row]` a row the model refuses (`[]` when the request has one
    row), named by its place in the first tensor's data (its first value, in a flat [n, k]
    tensor). None: a location that is none of these. `names`: the model's inputs, in order."""
    if not loc and one_row:
        loc = [LOC[0], 0]
    if not 2 <= len(loc) <= 3 or loc[0] != LOC[0] or type(loc[1]) is not int:
        return None
    row = loc[1]
    if isinstance(layout, Place):  # the one [n, k] tensor (a Place is a tuple too)
        if len(loc) == 2:
            return data_loc(layout.tensor, row if layout.nested else row * layout.width, False, 1)
        if loc[2] not in names:
            return None
        place, column = layout, names.index(loc[2])
    elif len(loc) == 2:
        return data_loc(0, row, False, 1)
    elif isinstance(layout, tuple):
        if loc[2] not in layout:
            return None
        place, column = Place(layout.index(loc[2]), False, 1), 0
    else:
        found = layout.get(loc[2])
        if found is None:
            return None
        place, column = found, 0
    return data_loc(place.tensor, row * place.width + column, place.nested, place.width)
