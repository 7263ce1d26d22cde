"""`python -m charrnn` runs the same launcher as the `charrnn` console script."""
from .cli import main

if __name__ == "__main__":
    main(prog_name="charrnn")
