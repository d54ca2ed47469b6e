"""Every reach into a library's internals, one module per library: `uvicorn` (the HTTP
protocol the server subclasses), `fastapi` (the middleware stack the app rebuilds, its
native telemetry), `starlette` (the matched route its router leaves in the scope), `sklearn`
(SVC's libsvm predict) and `anyio` (abandoning a thread on cancel).

Each module checks, when first asked, that what it relies on is there (`probe()` says what
is missing, or None); when something is not, it logs one warning naming the library, its
version and what is now slower, and the caller takes the library's public behaviour
instead: slower, never silent, never a crash. tests/app/compat/ runs every fallback.

The bottom layer: it imports nothing else of the service.
"""
