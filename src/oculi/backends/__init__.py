"""Model backends behind small capability protocols (see ``base``)."""
