"""The results folder: its layout and the runs recorded in it."""
