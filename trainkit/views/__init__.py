"""What the CLI shows that is not training output: the model summary table and its Graphviz picture."""
from .summary import Summary, SummaryRow, render_summary, summarize, to_dot, write_dot

__all__ = ["Summary", "SummaryRow", "render_summary", "summarize", "to_dot", "write_dot"]
