"""A tiny pure-Python library whose ordinary test suite is make bench's short case:
an expression parser, an LRU cache, graph algorithms, CSV statistics, interval sets
and a TOML config reader."""
