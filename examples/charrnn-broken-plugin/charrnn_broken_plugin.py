"""A charrnn plugin that cannot be imported, to show that the launcher survives it."""

raise RuntimeError("this example plugin is broken on purpose")
