"""Every reach into a library's internals, one module per library; nothing else in the
service touches a library's private names or undocumented behaviour. `uvicorn`: the HTTP
protocol the server subclasses; `fastapi`: the middleware stack the app rebuilds and its
native telemetry; `starlette`: the matched route the router leaves in the scope; `sklearn`:
SVC's libsvm predict.

Each module checks that what it relies on is there the first time it is asked, as the
service starts (the protocol as the server module is imported, the rest as the app is built
or the model loads); `probe()` says what is missing, or None, and tests/app/compat/ asserts
None on the locked versions. Where something is missing, the module logs one warning naming
the library, its version and what is now slower, and the caller takes the library's public
behaviour instead: slower, never silent, never a crash.

The bottom layer: it imports only libraries and the standard library, nothing else of the
service.
"""
