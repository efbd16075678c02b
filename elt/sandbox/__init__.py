"""A local receiver for both publish targets (FlowKit REST, UOIS GraphQL), with faults and stats.

`Sandbox` is the default publish target, the peer of the publisher's tests and the
`elt sandbox serve` command; see server.py.
"""

from elt.sandbox.server import Sandbox

__all__ = ["Sandbox"]
