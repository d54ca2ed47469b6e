"""Adaptive micro-batching (`batcher`): concurrent requests' rows gathered into one model call.

Independent of the model it calls (a predict function is passed in); imports only the
foundation.
"""
