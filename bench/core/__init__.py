"""The foundation every layer stands on: errors, file writing and input validation, claims
between processes, the results layout, devices, signals and the code digest."""
