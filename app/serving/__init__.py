"""The model being served: the serving model with its batcher, metrics and model processes
(`served`), the slot that holds it and swaps another in without a pause (`slot`), the first
load with its retries (`loader`), the daemon threads loads run on so that shutdown never waits
for one (`threads`), and what the workers under one supervisor share: readiness and reloading
everywhere (`workers`).

Below the data plane; it may import monitoring, the model processes, batching and the model.
What it must tell a higher layer (readiness) it is given as a callback.
"""
