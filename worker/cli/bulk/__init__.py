"""`grants bulk`: reading files into checked rows, the run, the report and the plan."""
