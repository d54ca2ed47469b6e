"""The prediction protocols, each served as a lane: an endpoint straight on ASGI, below the
app's middleware and above FastAPI's routing, that reads its body within the service's limits
and answers from the data plane.

- `predict`: the service's own POST /predict (MLflow's body formats).
- `invocations`: MLflow's scoring server, POST /invocations (its JSON formats and CSV).
- `v2`: the Open Inference Protocol (KServe, Triton, MLServer, Seldon).

They are independent of each other; what they share is in `app.http.lane`. Below
`app.api`; they may import `app.http`, the data plane and what is under it.
"""
