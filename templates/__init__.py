"""The web door's Jinja templates, shipped inside the package as ``clinic.templates``."""
