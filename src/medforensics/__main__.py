"""``python -m medforensics``."""

from medforensics.cli import main

if __name__ == "__main__":
    main()
