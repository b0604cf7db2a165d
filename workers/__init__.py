"""Dramatiq workers: the runtime (`workers.runtime`), the broker and its middleware, one per module.

Importing this package connects to nothing and creates nothing. The one module that wires a
process at import is `workers.main`, which the Procfile's `worker:` line (and `entitle
worker`) hands to Dramatiq, since Dramatiq needs the broker to exist when it imports it.
"""
