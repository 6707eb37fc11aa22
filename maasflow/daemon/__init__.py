"""The daemon: watches MAAS, decides each machine's next step, acts, and provisions."""
