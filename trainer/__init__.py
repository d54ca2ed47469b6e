"""The training job: load data, fit and evaluate a model, track and register it in MLflow."""
