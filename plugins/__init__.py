"""Built-in callbacks, each a plugin registered through the ``charrnn`` entry-point group."""
