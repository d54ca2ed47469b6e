"""The Open Inference Protocol (V2) REST lane: the endpoints and their routing (`lane`), the
request as sent (`request`), the tensors read into the rows a /predict body becomes
(`inputs`, with `places` and the compiled `decoder`), the datatypes (`datatypes`), the model's
metadata and answer (`model`) and the OpenAPI part (`openapi`).
"""
