"""`python -m elt.devdata`: write the synthetic exports (see elt/devdata/flowkit.py)."""

from elt.devdata.flowkit import main

main()
