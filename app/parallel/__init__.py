"""Model processes (`model_process`): a second interpreter beside a worker, serving the same
model, that takes a share of the worker's large /predict bodies under its own GIL.

Below the model slot that starts them; it may import `app.model` and `app.process`.
"""
