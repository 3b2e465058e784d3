"""Booking events: what the marketplace tells us, turned into messages."""
