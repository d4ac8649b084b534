"""Studies: a file that fixes datasets, methods and seeds (`file`), the runs it asks for and
what they cost (`grid`), its committed results archive (`archive`), and running it (`execute`)."""
