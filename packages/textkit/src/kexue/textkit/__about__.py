"""Version of kexue-textkit (the single source of truth, read by hatchling)."""

__version__ = "0.3.1"
