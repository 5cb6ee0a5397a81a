"""Study orchestration: TOML spec -> planned cells -> executors (debug, local, slurm) -> cell store."""
