"""The body formats (`payload`: records, split, columns, instances, inputs, and MLflow's
scoring-server subset of them; `csv`: text/csv; `parquet`: Parquet) reduced to one of two
shapes, and the compiled decoders that read a plain body straight into the model's matrix
(`decoders`, and CSV's in `csv`).

Below `app.model`, whose schema checks what they produce; imports only the foundation.
"""
