"""The process side of the service: `python -m app` runs the app under uvicorn, as one
process or a supervisor with WORKERS worker processes (`supervisor`), each worker speaking
HTTP through the service's own uvicorn protocol (`protocol`: TCP_NODELAY, connections
balanced between workers), and stopping behind a load balancer without failing a request
(`drain`: unready first, DRAIN_SECONDS, then uvicorn's graceful stop).

The top layer: it may import everything below it (the app from `app.api`); nothing imports it.
"""
