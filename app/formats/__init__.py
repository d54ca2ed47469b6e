"""The /predict body formats (`payload`: records, split, columns, instances, inputs) reduced to
one of two shapes, and the compiled decoders that read a plain body straight into the model's
matrix (`decoders`).

Below `app.model`, whose schema checks what they produce; imports only the foundation.
"""
