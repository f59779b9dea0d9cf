"""One package per process. Services never import each other."""
