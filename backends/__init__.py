"""Built-in array backends, each a plugin registered through the ``charrnn`` entry-point group."""
