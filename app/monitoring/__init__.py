"""What the service saw and answered: the Prometheus metrics (`metrics`), the drift counts
against the model's baseline (`drift`), the per-request recorder that feeds them (`recorder`),
POST /feedback's scoring once across workers (`feedback`, `siblings`) and replicas, and the
prediction log written to PostgreSQL (`predlog`, its COPY text in `copytext`).

Below the model slot (which counts into `metrics`); it may import `app.model` and the
foundation (settings, errors), never HTTP or the server.
"""
