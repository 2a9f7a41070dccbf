"""The ``unitrack`` command line (typer + rich); each command imports what it needs when run."""
