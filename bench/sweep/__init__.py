"""`bench sweep`: Optuna studies over a recipe's `[search]` table, and their workers."""
