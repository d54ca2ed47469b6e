"""The ASGI app: `create_app(settings)` (`application`) wires the model slot and its loader,
the data plane, the protocol lanes, the FastAPI routes (`routes/`: health, readiness,
/model-info, /metrics, /feedback, /admin), the error handlers and the OpenAPI document
(`openapi`), and runs their lifespan.

Below `app.server`; it may import the protocols, `app.http` and every layer under them.
"""
