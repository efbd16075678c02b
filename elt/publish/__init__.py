"""Publish: stream final tables to REST and GraphQL endpoints, recording every answer."""
