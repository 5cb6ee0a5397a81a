"""Readers for each dataset layout; each returns records and fills an IngestReport."""
