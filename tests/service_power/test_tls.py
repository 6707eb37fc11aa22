"""The power router over HTTPS: MAAS with power_verify_ssl=n and =y (trusting our CA) both work."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from maasflow.serve.power_config import PowerAuth
from tests.service_power.helpers import TOKEN, power_service, wol_config
from tests.service_power.maas_replay import MaasWebhookDriver


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _cert(subject: str, key: Any, issuer: str, signer: Any, *, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it."""
    out = tmp_path_factory.mktemp("pki")
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _cert("maasflow test CA", ca_key, "maasflow test CA", ca_key, ca=True)
    server = _cert("127.0.0.1", server_key, "maasflow test CA", ca_key, ca=False)
    paths = {"ca": out / "ca.pem", "cert": out / "server.pem", "key": out / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_maas_over_tls_with_and_without_verification(
    pki: dict[str, Path], udp_catcher: Any
) -> None:
    """Over HTTPS, a driver that skips verification and one trusting our CA both power on."""
    trusting = ssl.create_default_context(cafile=str(pki["ca"]))
    async with power_service(
        wol_config(udp_catcher.port),
        PowerAuth(token=TOKEN),
        ssl_certfile=str(pki["cert"]),
        ssl_keyfile=str(pki["key"]),
    ) as (base, _):
        assert base.startswith("https://")
        for verify in (False, trusting):
            driver = MaasWebhookDriver(
                f"{base}/power/desk1/on",
                f"{base}/power/desk1/off",
                f"{base}/power/desk1",
                "abc123",
                token=TOKEN,
                verify=verify,
            )
            await driver.perform("on")
            assert await driver.power_query() == "on"
        async with httpx.AsyncClient() as default_trust:
            with pytest.raises(httpx.ConnectError):
                await default_trust.get(f"{base}/power/desk1")  # our CA is not a system CA
    assert len(await udp_catcher.next()) == 102
