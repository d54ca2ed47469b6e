"""The model process itself (`python -m app.parallel.child READ_FD WRITE_FD`): the worker's
serving file of the model first, then bodies in and answers out until the pipe ends. Its
worker's end is `app.parallel.model_process.ModelProcess`."""

from __future__ import annotations

import signal
import struct
import sys
import time
import warnings
from multiprocessing.connection import Connection

import msgspec
import numpy as np

from app.parallel.frames import HEAD, LOCAL, OK


def _serve(recv: Connection, send: Connection) -> None:
    """The model process: the snapshot, then bodies in and answers out until the pipe ends."""
    from app.model.output import rows
    from app.model.schema import InputSchema
    from app.model.snapshot import Mismatch, loads
    from app.process.prepare import freeze_heap

    first = recv.recv_bytes()
    (max_rows,) = struct.unpack_from("<Q", first)
    try:
        snapshot = loads(first[8:])  # the worker's own snapshot of the model it serves
    except Mismatch as exc:
        send.send_bytes(f"the model's serving file {exc}".encode())
        return
    predict = snapshot.predict_path()  # None unless it answers the example's rows as before
    decoder = InputSchema.from_signature(snapshot.inputs, snapshot.fitted_order).decoder
    if predict is None or decoder is None:
        send.send_bytes(b"the model's predict path or decoder does not rebuild")
        return
    freeze_heap()
    send.send_bytes(b"ready")
    while True:
        body = recv.recv_bytes()
        decoded = decoder.decode(body, max_rows)
        if decoded is None:
            send.send_bytes(LOCAL)
            continue
        matrix = decoded[0]
        start = time.perf_counter()
        try:
            predictions = rows(predict(matrix))
            seconds = time.perf_counter() - start
            encoded = msgspec.msgpack.encode(predictions)
        except Exception:  # the worker predicts it again, and says what is wrong
            send.send_bytes(LOCAL)
            continue
        head = OK + HEAD.pack(*matrix.shape, seconds)
        send.send_bytes(b"".join((head, np.ascontiguousarray(matrix).data, encoded)))


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the worker, which stops us
    warnings.simplefilter("ignore")  # a body that warns is predicted again by the worker
    recv = Connection(int(argv[0]), writable=False)
    send = Connection(int(argv[1]), readable=False)
    try:
        _serve(recv, send)
    except (EOFError, BrokenPipeError):
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
