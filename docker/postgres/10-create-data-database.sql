-- Runs once, on the first start of an empty data volume (docker-entrypoint-initdb.d), as
-- POSTGRES_USER. The server's other database, `mlflow` (MLflow's backend store), is created by
-- the image itself from POSTGRES_DB. `iris` holds the training data: seed-db creates and fills
-- its iris_data table. `predictions` holds the API's prediction log (tables created by the API).
CREATE DATABASE iris;
CREATE DATABASE predictions;
