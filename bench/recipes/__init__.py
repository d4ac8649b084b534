"""Recipe files (`methods/*.toml`) parsed into methods that run."""
