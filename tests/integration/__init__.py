"""Integration tests: the real provider SDKs over real HTTP to a loopback fake provider."""
