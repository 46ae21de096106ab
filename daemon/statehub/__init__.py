"""statehub: keeps a fleet of git repositories consistent, and proves that it did."""

__version__ = "0.1.0"
