"""Foundation every stage stands on: errors, secrets, console, database, results."""
