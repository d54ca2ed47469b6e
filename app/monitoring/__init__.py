"""What the service saw and answered: the Prometheus metrics (`metrics`), drift and live
accuracy (`drift`), the per-request recorder that feeds them (`recorder`) and the prediction
log written to PostgreSQL (`predlog`).

Below the model slot (which counts into `metrics`); it may import `app.model` and the
foundation (settings, errors), never HTTP or the server.
"""
