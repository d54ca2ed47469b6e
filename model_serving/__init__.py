"""Facts the API (`app`) and the trainer (`trainer`) share, in one home each.

Dependency-free (the standard library only): both packages import it, and so do the tests.
"""
