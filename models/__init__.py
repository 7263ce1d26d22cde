"""Built-in models, each a plugin registered through the ``charrnn`` entry-point group."""
