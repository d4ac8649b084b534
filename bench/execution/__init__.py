"""Where units run: the jobs ledger and the executors (local worker processes, SLURM)."""
