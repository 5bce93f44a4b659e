"""Where runs can be mirrored besides their folder: optional integrations with tracking tools."""
