"""Plugins shipped with the core, registered by module path before any entry point."""
