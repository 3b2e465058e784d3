"""Callbacks from the SMS provider: delivery reports and incoming SMS."""
