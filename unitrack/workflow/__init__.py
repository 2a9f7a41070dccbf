"""The git-like workflow over runs: commit a command as a run, clean up, re-run, roll back."""
