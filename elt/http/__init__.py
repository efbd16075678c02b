"""One HTTP layer for API sources and publish: transport, auth, retries, endpoints."""
