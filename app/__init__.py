"""The serving API. Its packages are layers; each imports only the ones below it (import-linter
checks the order in CI, see pyproject.toml):

    app.server       the process: uvicorn, the supervisor and its workers, the HTTP protocol
    app.api          the ASGI app: the factory, FastAPI's routes, the OpenAPI document
    app.protocols    the prediction protocols' lanes: predict (POST /predict), invocations
                     (MLflow's scoring server) and v2
    app.http         what every endpoint shares: auth, middleware, error handlers, limits
    app.dataplane    a request body in, the answer's bytes out, on the serving model
    app.serving      the model slot (swap without a pause), the first load, the workers
    app.monitoring | app.parallel | app.batching
                     metrics, drift, accuracy, the prediction log | model processes |
                     micro-batching
    app.model        the predictor contract, MLflow, registry, cache, schema, fast paths
    app.formats      the body formats (JSON, CSV) and their compiled decoders
    app.settings     the settings, read from the environment once
    app.errors | app.process
                     the exceptions and the one error shape | process-wide side effects
    app.compat       every reach into a library's internals, with its fallback
"""
