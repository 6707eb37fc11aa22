"""maasflow: drive MAAS machines from New to Deployed and through provisioning, unattended."""

__version__ = "0.1.0"
