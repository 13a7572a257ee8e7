"""Nano-2 style data recipes: canonical schema, domain builders, transforms, mixtures and builds."""
