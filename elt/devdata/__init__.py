"""Reproducible synthetic FlowKit and UOIS exports (`python -m elt.devdata`)."""
