"""Developer tooling for connect-guard: local replay, embedded AWS, template introspection."""
