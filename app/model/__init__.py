"""The model: the predictor contract (`predictor`), the MLflow-backed predictor
(`mlflow_model`) and the registry it asks (`registry`), the input schema compiled from the
signature (`schema`) with its inference params (`params`) and, for a model without one, the
input passed through (`unsigned`), the model's output per row and in its own form (`output`),
what /model-info shows (`info`), the local cache (`cache`) with the service's serving file
(`snapshot`), the lean scikit-learn predict paths (`fastpath`) and load failures in words
(`failures`).

Knows nothing of HTTP, the server, the slot or monitoring; it may import `app.formats` and
the foundation.
"""
