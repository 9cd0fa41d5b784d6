"""The one Markdown table writer that the sweep summary and the study report share."""

from lstmgan.results.markdown import markdown_table


def test_a_table_is_a_header_a_separator_and_a_line_per_row():
    assert markdown_table(["model", "acc"], [["rnn", "10 %"], ["lstm", "99 %"]]).splitlines() == [
        "| model | acc |", "|---|---|", "| rnn | 10 % |", "| lstm | 99 % |"]


def test_a_table_without_rows_keeps_its_header():
    assert markdown_table(["epoch", "fid"], []) == "| epoch | fid |\n|---|---|"
