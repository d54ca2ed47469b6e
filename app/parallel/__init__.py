"""Model processes: a second interpreter beside a worker, serving the same model, that takes
a share of the worker's large /predict bodies under its own GIL. The worker's end
(`model_process`), the child (`child`) and the frames on their pipes (`frames`).

Below the model slot that starts them; it may import `app.model` and `app.process`.
"""
