"""Results rebuilt from run folders alone: a sweep's summary (summary.py), the study report (report.py), their
figures (plots.py) and their one Markdown table writer (markdown.py). Nothing here calls W&B."""
