"""Science experiments built on the core: configuration selection, seed ensembles, identifiability.
They depend one way on the library; nothing in the library imports them."""
