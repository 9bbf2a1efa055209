"""Load and latency measurements of a running API (loopback only, bounded in time)."""
