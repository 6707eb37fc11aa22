"""The MAAS side: OAuth signing, the HTTP client and the models of what MAAS returns.

This package knows nothing of filters, the lifecycle or provisioning.
"""
