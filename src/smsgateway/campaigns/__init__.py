"""Campaigns: a text with ``#COLUMN#`` placeholders sent to the rows of a CSV."""
