"""The environment variables the project passes through to MLflow and boto3 (which read them
themselves): the contract tests of compose and of the Kubernetes manifests accept these."""

from __future__ import annotations

from mlflow import environment_variables as mlflow_env

MLFLOW_VARIABLES = {
    var.name
    for var in vars(mlflow_env).values()
    if isinstance(var, mlflow_env._EnvironmentVariable)
}
AWS_VARIABLES = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL_S3",
}
