"""Pydantic models of the MAAS 2.0 objects maasflow reads.

Only the fields the daemon uses are declared; every model ignores fields it does not know
and tolerates missing optional ones, so any MAAS 2.x/3.x machine JSON parses (see
`../shared/maas-api-facts.md` §2 for the fields and their meaning). Nothing here decides
anything: the lifecycle reads these models, the client builds them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from maasflow.daemon.maas.listing import boot_first_macs


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Named(_Lenient):
    """A zone, pool or domain reference: we only need its name."""

    name: str = ""
    id: int | None = None


class Subnet(_Lenient):
    cidr: str | None = None
    name: str | None = None


class Link(_Lenient):
    """One link of an interface; `ip_address` is present only once an address is assigned."""

    id: int | None = None
    mode: str = ""
    ip_address: str | None = None
    subnet: Subnet | None = None


class Interface(_Lenient):
    id: int | None = None
    name: str = ""
    type: str = ""
    mac_address: str | None = None
    links: list[Link] = Field(default_factory=list)


class Machine(_Lenient):
    """A machine as `GET machines/` lists it."""

    system_id: str
    hostname: str = ""
    fqdn: str = ""
    status: int
    status_name: str = ""
    status_message: str | None = None
    error_description: str | None = None
    owner: str | None = None
    locked: bool = False
    zone: Named = Field(default_factory=Named)
    pool: Named | None = None
    domain: Named | None = None
    power_state: str = "unknown"
    power_type: str = ""
    tag_names: list[str] = Field(default_factory=list)
    ip_addresses: list[str] = Field(default_factory=list)
    interface_set: list[Interface] = Field(default_factory=list)
    boot_interface: Interface | None = None
    distro_series: str = ""

    @property
    def macs(self) -> list[str]:
        """Every MAC of the machine, the boot interface's first."""
        return boot_first_macs(self.boot_interface, self.interface_set)

    @property
    def pool_name(self) -> str:
        return self.pool.name if self.pool else ""


class User(_Lenient):
    """What `users/?op=whoami` answers."""

    username: str
    email: str | None = None
    is_superuser: bool = False
