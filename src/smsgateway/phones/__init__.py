"""Phone numbers: normalisation, the registry of users' numbers, opt-out."""
