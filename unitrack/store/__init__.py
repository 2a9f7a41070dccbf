"""The local run store: one folder per run, an append-only journal, and a SQLite index."""
