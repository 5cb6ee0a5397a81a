"""The closing analysis: tables, factor effects with intervals, protocol audit, figures, one HTML page."""
