"""A local receiver for both publish targets (FlowKit REST, UOIS GraphQL), with faults and stats.

`elt.sandbox.server.Sandbox` is the default publish target, the peer of the publisher's tests
and the `elt sandbox serve` command. It stands apart from the engine: it imports nothing of
elt but errors, so the engine could be swapped out and the sandbox would still serve.
"""
