"""Distributed runs: how the ranks of one job find rank 0's run and send it their events."""
