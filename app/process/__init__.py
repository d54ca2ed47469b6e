"""Process-wide side effects, each in one visible place: preparing a serving process and
freezing its heap (`prepare`), and a core of its own per process (`cores`).

Foundation: imports nothing else of the service.
"""
