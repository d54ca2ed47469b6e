"""The frames a worker and its model process exchange on their pipes, after the first (the
row limit and the model's serving file) and the child's "ready": a body goes in as sent; an
answer comes back as OK, HEAD, the float64 matrix and the msgpack predictions, or as LOCAL
(the worker decodes and predicts that body itself)."""

from __future__ import annotations

import struct

OK, LOCAL = b"\x01", b"\x00"
HEAD = struct.Struct("<IId")
"""After OK: the matrix's rows and width, and the seconds predicting took."""
