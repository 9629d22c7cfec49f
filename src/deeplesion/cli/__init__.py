"""The ``deeplesion`` command line (typer). Logging is configured here and nowhere else."""
