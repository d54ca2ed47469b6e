"""HTTP plumbing every endpoint shares: API-key auth (`auth`), the request middleware with its
request id and metrics (`observe`), the documented response shapes (`contract`), the error
handlers that send every error in the service's one shape (`errors`) and what every lane
does with headers, body and limits (`lane`).

Below the protocols and `app.api`; it may import the data plane and the layers under it.
"""
