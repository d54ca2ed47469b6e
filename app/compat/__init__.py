"""Every reach into a library's internals, one module per library."""
