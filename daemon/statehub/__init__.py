"""statehub: keeps a fleet of git repositories consistent, and proves that it did."""

__version__ = "0.2.2"  # what changed: CHANGELOG.md
