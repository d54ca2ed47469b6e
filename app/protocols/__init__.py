"""The prediction protocols, each served as a lane: an endpoint straight on ASGI, below the
app's middleware and above FastAPI's routing, that reads its body within the service's limits
and answers from the data plane.

- `predict`: the service's own POST /predict (MLflow's body formats).
- `v2`: the Open Inference Protocol (KServe, Triton, MLServer, Seldon).

The two are independent of each other; what they share is in `app.http.lane`. Below
`app.api`; they may import `app.http`, the data plane and what is under it.
"""
