"""SMS providers: one Protocol, a fake that records, and OVHcloud."""
