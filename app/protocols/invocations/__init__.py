"""POST /invocations: MLflow's scoring-server protocol (`lane`), what `mlflow models serve`
answers and MLflow's `ScoringServerClient` posts to: its JSON formats and `text/csv`, answered
from the same data plane as /predict.
"""
