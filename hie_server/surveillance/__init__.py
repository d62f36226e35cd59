"""hie_server.surveillance (being built)."""
