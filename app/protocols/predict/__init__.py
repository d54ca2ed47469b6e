"""POST /predict: the service's own protocol (`lane`). Its body formats are read in
`app.formats`, which the model's schema shares.
"""
