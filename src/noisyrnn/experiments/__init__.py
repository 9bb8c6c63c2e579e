"""Experiments: sweep files and resumable results stores, the runner and its executors (local
processes, Ray), workers, the paper's tables and reports, the validation search, and the
theory analyses of checkpoints."""
