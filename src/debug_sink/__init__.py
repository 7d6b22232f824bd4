"""debug-sink."""
