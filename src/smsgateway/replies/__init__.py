"""Replies from users: what an incoming SMS means and what the gateway does about it."""
