"""`bench run`: runs planned, grouped into units (a stage 1 and its runs), executed, and
their status."""
