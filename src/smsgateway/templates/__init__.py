"""Booking SMS templates: shipped defaults, placeholder checks and rendering."""
