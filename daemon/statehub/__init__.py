"""statehub: keeps a fleet of git repositories consistent, and proves that it did."""

__version__ = "0.2.0"  # what changed: CHANGELOG.md
