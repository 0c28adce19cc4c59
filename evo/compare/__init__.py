"""`evo compare`: reads run folders only (never the search's live state) and writes one report:
tables per budget with mean ± std over seeds, sentences on which gaps beat the seed spread, plots."""

from evo.compare.report import format_report, write_report
from evo.compare.tables import per_seed_results, summarize

__all__ = ["format_report", "per_seed_results", "summarize", "write_report"]
