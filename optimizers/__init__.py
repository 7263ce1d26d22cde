"""Built-in optimizers, each a plugin registered through the ``charrnn`` entry-point group."""
