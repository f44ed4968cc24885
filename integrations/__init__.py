"""Framework glue: NAS-Bench-201, export, Optuna and other integrations."""
