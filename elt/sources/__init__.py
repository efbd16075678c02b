"""API sources: lookups from REST and GraphQL endpoints into raw.<name>."""
