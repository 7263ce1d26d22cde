"""`python -m charrnn` runs the same launcher as the `charrnn` console script."""
from .launch import main

if __name__ == "__main__":
    main()
