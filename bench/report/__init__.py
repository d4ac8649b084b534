"""`bench report`: tables, statistics and plots from the runs in `results/<dataset>/`."""
