"""Post-deploy provisioning: a local script, or an HTTP provisioner polled pass after pass.

`PROVISION_URL` picks the kind (`provisioner_for`):

- a path: `ScriptProvisioner` runs `<script> <system_id> <hostname> <ip>` as a supervised
  run (`common.supervision`: an argv, never a shell, under a supervisor in its own session,
  so it outlives a daemon that dies and is found again by the next one), with `MAASFLOW_*`
  variables describing the machine and the deploy, keeps the last few KiB of its output,
  and kills the whole process group at `PROVISION_TTL` (0: never), when the daemon
  cancels it, and (what it left in the background) once it has exited. No secret of
  maasflow's (the MAAS API key, the provisioning token) is in its environment. Its result
  file lives in `runs_dir` (the state directory's `runs/`) until the store has the result.
- an `http(s)://` URL: `HttpProvisioner` POSTs `{"id", "name", "ip", "mac", "deploy_id"}`
  (and `role` when a targets rule names one; a script gets it as `MAASFLOW_ROLE`),
  then each pass GETs `<url>/<quoted system_id>`: 202 running, 200 done unless the body
  says it failed (the opencord provisioner's `{"status": 3, "message": ...}`, see
  opencord/maas `provisioner/task.go` and `handlers.go`), 404 no such job (the caller POSTs
  again). Before POSTing again for one deploy, the caller asks `lookup`: a job of this
  deploy the provisioner already has (running, or done) is adopted, never run twice.
  With `PROVISION_TOKEN` it sends `Authorization: Bearer <token>` on every request (what
  `maasflow serve --provision-token-file` requires); the token never appears in its errors,
  repr or logs, even when a provisioner echoes it back.

Every failure is a `ProvisionError` carrying its evidence; retrying with backoff and
remembering progress are the caller's and the store's business, not this module's.
`target_for` gathers what a provisioner needs to know from a MAAS machine.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from maasflow.common import child, supervision
from maasflow.common.errors import ConfigError, ProvisionError
from maasflow.common.secrets import scrubbed_environ
from maasflow.common.supervision import Run, RunHandle
from maasflow.daemon.maas.listing import InterfaceData, LinkData, MachineData

log = structlog.get_logger(__name__)

TAIL_BYTES = 4096  # output kept from a script: the end is where failures explain themselves
KILL_GRACE = child.KILL_GRACE  # seconds between SIGTERM and SIGKILL of a script's group
HTTP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Target:
    """What provisioning needs to know about a machine."""

    system_id: str
    hostname: str
    fqdn: str
    ip: str
    mac: str
    zone: str
    pool: str
    role: str = ""  # a targets rule's `provision.role`: sent as `role`, or MAASFLOW_ROLE


def dns_resolve(name: str) -> str | None:
    """The first address `name` resolves to, or None (never raises)."""
    if not name:
        return None
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return None
    return next((str(info[4][0]) for info in infos), None)


def _valid_ip(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def _boot_links(machine: MachineData) -> Sequence[LinkData]:
    """The boot interface's links, looked up in interface_set if the listing omits them."""
    boot = machine.boot_interface
    if boot is None:
        return []
    if boot.links:
        return boot.links
    same = (i for i in machine.interface_set if _same_interface(i, boot))
    return next((i.links for i in same), [])


def _same_interface(a: InterfaceData, b: InterfaceData) -> bool:
    if a.id is not None and a.id == b.id:
        return True
    return bool(a.mac_address) and a.mac_address == b.mac_address


def _first_ip(candidates: Iterable[str | None]) -> str | None:
    return next((ip for ip in map(_valid_ip, candidates) if ip), None)


def target_for(machine: MachineData, resolve: Callable[[str], str | None] = dns_resolve) -> Target:
    """Build the `Target`; the IP is the boot link's, else ip_addresses[0], else DNS."""
    ip = _first_ip(link.ip_address for link in _boot_links(machine))
    ip = ip or _first_ip(machine.ip_addresses)
    ip = ip or _first_ip(resolve(name) for name in (machine.fqdn, machine.hostname) if name)
    if not ip:
        raise ProvisionError(
            f"no IP address for {machine.hostname or machine.system_id}: no boot-interface "
            "link address, no ip_addresses, DNS lookup failed"
        )
    return Target(
        system_id=machine.system_id,
        hostname=machine.hostname,
        fqdn=machine.fqdn,
        ip=ip,
        mac=next(iter(machine.macs), ""),  # `macs` lists the boot interface's MAC first
        zone=machine.zone.name,
        pool=machine.pool_name,
    )


def _script_error(exc: child.ChildError | supervision.Interrupted, ttl: float) -> ProvisionError:
    if isinstance(exc, supervision.Interrupted):
        return ProvisionError(f"provisioning script was interrupted: {exc}")
    if isinstance(exc, child.StartError):
        return ProvisionError(f"cannot start provisioning script {exc.argv0}: {exc.cause}")
    if isinstance(exc, child.TimedOut):
        return ProvisionError(
            f"provisioning script timed out after {ttl:g}s; its process group was killed",
            output_tail=exc.tail,
        )
    code = exc.exit_code
    how = f"exited with code {code}" if code is not None and code >= 0 else exc.reason
    return ProvisionError(
        f"provisioning script {how}: {exc.last_line or '(no output)'}",
        exit_code=code,
        output_tail=exc.tail,
    )


def _child_env(target: Target, deploy_id: str) -> dict[str, str]:
    env = scrubbed_environ()
    env.update(
        MAASFLOW_DEPLOY_ID=deploy_id,
        MAASFLOW_SYSTEM_ID=target.system_id,
        MAASFLOW_HOSTNAME=target.hostname,
        MAASFLOW_FQDN=target.fqdn,
        MAASFLOW_IP=target.ip,
        MAASFLOW_MAC=target.mac,
        MAASFLOW_ZONE=target.zone,
        MAASFLOW_POOL=target.pool,
    )
    if target.role:
        env["MAASFLOW_ROLE"] = target.role
    return env


class ScriptProvisioner:
    """Runs the provisioning script, supervised; PROVISION_URL is a path."""

    def __init__(
        self, script: str, ttl: float, *, grace: float = KILL_GRACE, runs_dir: Path | None = None
    ) -> None:
        self.script = script
        self.ttl = ttl
        self.grace = grace
        self._runs_dir = runs_dir

    @property
    def runs_dir(self) -> Path:
        """Where result files wait for the store (a private temporary one unless given)."""
        if self._runs_dir is None:
            self._runs_dir = Path(tempfile.mkdtemp(prefix="maasflow-runs-"))
        return self._runs_dir

    def _problem(self) -> str | None:
        path = Path(self.script)
        if not path.is_file():
            return f"provisioning script {self.script} does not exist or is not a file"
        if not os.access(path, os.X_OK):
            return f"provisioning script {self.script} is not executable (chmod +x it)"
        return None

    def check(self) -> None:
        """Raise ConfigError at start-up when the script cannot be run."""
        problem = self._problem()
        if problem:
            raise ConfigError(f"PROVISION_URL: {problem}; give an executable path or a URL")

    async def start(self, target: Target, deploy_id: str = "") -> Run:
        """Start the script gated (see `common.supervision`): it begins at `Run.release()`.

        ProvisionError when it cannot be started.
        """
        problem = self._problem()
        if problem:
            raise ProvisionError(problem)
        argv = [self.script, target.system_id, target.hostname, target.ip]
        timeout = self.ttl or None  # 0: no limit
        limits = child.Limits(timeout=timeout, grace=self.grace, tail_bytes=TAIL_BYTES)
        result_file = self.runs_dir / f"{uuid.uuid4().hex}.json"
        env = _child_env(target, deploy_id)
        try:
            return await supervision.start(argv, result_file=result_file, limits=limits, env=env)
        except child.StartError as exc:
            raise _script_error(exc, self.ttl) from None

    async def finish(self, run: Run) -> child.Finished:
        """How the released run ended; ProvisionError when it never started or left nothing."""
        try:
            return await run.wait()
        except (child.StartError, supervision.Interrupted) as exc:
            raise _script_error(exc, self.ttl) from None

    async def adopt(self, handle: RunHandle) -> child.Finished:
        """Wait for a run a previous daemon started, and take its result (see `finish`)."""
        try:
            return await supervision.adopt(handle)
        except (child.StartError, supervision.Interrupted) as exc:
            raise _script_error(exc, self.ttl) from None

    def verdict(self, finished: child.Finished) -> str:
        """The output tail of a run that exited 0; else ProvisionError saying how it ended."""
        try:
            return finished.check().output
        except child.ChildError as exc:
            raise _script_error(exc, self.ttl) from None

    async def run(self, target: Target, deploy_id: str = "") -> str:
        """Run the script to completion, recording nothing; its output tail, or ProvisionError."""
        run = await self.start(target, deploy_id)
        run.release()
        try:
            finished = await self.finish(run)
        finally:
            await run.close()
        return self.verdict(finished)


class PollResult(enum.Enum):
    """What the HTTP provisioner says about a submitted job."""

    RUNNING = "running"
    DONE = "done"
    MISSING = "missing"


class Found(enum.Enum):
    """What `lookup` found before a POST is repeated: whether this deploy's job is there."""

    RUNNING = "running"  # adopt it: poll it from now on
    DONE = "done"  # adopt it: provisioned
    NONE = "none"  # no job, a failed one, or another deploy's: POST


def _redacted(url: httpx.URL) -> str:
    """The URL for messages: a password or a query string (often a token) replaced by ***."""
    shown = url.copy_with(username=None, password=None, query=None)
    text = str(shown).replace("//", "//***@", 1) if url.userinfo else str(shown)
    return f"{text}?***" if url.query else text


class ProvisionerTrouble(ProvisionError):
    """The provisioner could not tell how the job goes (no answer, an unexpected status).

    Not a verdict on the job: the record stays running and the next pass asks again, so a
    passing glitch never leads to a second POST.
    """


class AnswerLost(ProvisionerTrouble):
    """A POST was sent but its answer never came (cut off, or slower than the timeout): the
    provisioner may have the job. The next pass asks it (GET) instead of POSTing again."""


# Failures after the request was written: the provisioner may have received it and acted.
_ANSWER_LOST = (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError)


def _same_deploy(response: httpx.Response, deploy_id: str) -> bool:
    """False when the record names a deploy id other than `deploy_id` (in `request`)."""
    try:
        body: Any = response.json()
    except ValueError:
        return True
    request = body.get("request") if isinstance(body, dict) else None
    theirs = request.get("deploy_id") if isinstance(request, dict) else None
    return not theirs or theirs == deploy_id


def _failure_message(response: httpx.Response) -> str | None:
    """The provisioner's message when a 200 body says the job failed, else None."""
    try:
        body: Any = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    status, name = body.get("status"), body.get("status_name")
    failed = (
        (isinstance(status, int) and status == 3)
        or (isinstance(status, str) and status.upper() == "FAILED")
        or (isinstance(name, str) and name.lower() == "failed")
    )
    if not failed:
        return None
    message = body.get("message") or body.get("error") or "no message"
    return str(message)[:500]


class HttpProvisioner:
    """POST-then-poll client of an HTTP provisioner; PROVISION_URL is http(s)://."""

    def __init__(
        self,
        url: str,
        ttl: float,
        client: httpx.AsyncClient | None = None,
        *,
        token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            self._url = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ConfigError(
                f"PROVISION_URL: invalid URL ({exc}); give http(s)://host/path"
            ) from exc
        if self._url.scheme not in ("http", "https") or not self._url.host:
            raise ConfigError("PROVISION_URL: give an http(s)://host/path URL or a script path")
        self.url = url
        self.ttl = ttl
        self._client = client
        self._owns_client = client is None
        self._clock = clock
        self._token = token
        self._headers = {} if token is None else {"Authorization": f"Bearer {token}"}

    def __repr__(self) -> str:
        return f"HttpProvisioner({_redacted(self._url)!r}, ttl={self.ttl:g})"

    def job_url(self, system_id: str) -> str:
        """`<url>/<system_id>` (any query kept), the id quoted to stay one path segment."""
        path = self._url.raw_path.split(b"?")[0].rstrip(b"/")
        path += b"/" + quote(system_id, safe="").encode()
        query = b"?" + self._url.query if self._url.query else b""
        return str(self._url.copy_with(raw_path=path + query))

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=HTTP_TIMEOUT)
        return self._client

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http().request(method, url, headers=self._headers, **kwargs)
        except httpx.HTTPError as exc:
            shown = _redacted(httpx.URL(url))
            reason = self._scrub(f"{type(exc).__name__}: {exc}")
            lost = method == "POST" and isinstance(exc, _ANSWER_LOST)
            error = AnswerLost if lost else ProvisionerTrouble
            raise error(f"{method} {shown}: {reason}") from None

    def _scrub(self, text: str) -> str:
        """`text` with the token, should a provisioner echo it, replaced by ***."""
        return text if not self._token else text.replace(self._token, "***")

    def _error(self, method: str, url: str, response: httpx.Response) -> ProvisionError:
        snippet = self._scrub(response.text[:200].strip() or response.reason_phrase)
        shown = _redacted(httpx.URL(url))
        hint = ""
        if response.status_code == 401:
            hint = " (check PROVISION_TOKEN / PROVISION_TOKEN_FILE)"
        return ProvisionError(
            f"provisioner answered HTTP {response.status_code} to {method} {shown}: {snippet}"
            + hint
        )

    async def submit(self, target: Target, deploy_id: str = "") -> None:
        """POST the job (with `deploy_id` when given); any 2xx is accepted, else ProvisionError
        (AnswerLost when the request went out but no answer came back)."""
        body = {"id": target.system_id, "name": target.hostname, "ip": target.ip, "mac": target.mac}
        if deploy_id:
            body["deploy_id"] = deploy_id
        if target.role:
            body["role"] = target.role
        response = await self._request("POST", self.url, json=body)
        if not response.is_success:
            raise self._error("POST", self.url, response)

    async def lookup(self, target: Target, deploy_id: str) -> Found:
        """Whether the provisioner already has this deploy's job (ask before POSTing again).

        A record naming another deploy id is not ours; one naming none (a provisioner that
        does not echo it) is taken for ours. A failed job is `NONE`: POSTing again is the
        retry. ProvisionerTrouble when it cannot say: never POST blind.
        """
        url = self.job_url(target.system_id)
        response = await self._request("GET", url)
        if response.status_code == 404:
            return Found.NONE
        if response.status_code not in (200, 202):
            raise ProvisionerTrouble(str(self._error("GET", url, response)))
        if not _same_deploy(response, deploy_id) or _failure_message(response) is not None:
            return Found.NONE
        return Found.RUNNING if response.status_code == 202 else Found.DONE

    async def poll(self, target: Target, started_at: float) -> PollResult:
        """Ask how the job is going.

        ProvisionError when the job failed or ran past the TTL; ProvisionerTrouble when the
        provisioner could not say (ask again next pass).
        """
        url = self.job_url(target.system_id)
        elapsed = self._clock() - started_at
        late = 0 < self.ttl < elapsed  # PROVISION_TTL=0: never late
        try:
            result = self._interpret(url, await self._request("GET", url))
        except ProvisionerTrouble:
            if not late:
                raise
            result = PollResult.RUNNING
        if result is not PollResult.DONE and late:
            raise ProvisionError(f"provisioning timed out after {self.ttl:g}s ({elapsed:.0f}s)")
        return result

    def _interpret(self, url: str, response: httpx.Response) -> PollResult:
        code = response.status_code
        if code == 202:
            return PollResult.RUNNING
        if code == 404:
            return PollResult.MISSING
        if not response.is_success:
            error = self._error("GET", url, response)
            raise ProvisionerTrouble(str(error))
        message = _failure_message(response)
        if message is not None:
            shown = _redacted(httpx.URL(url))
            message = self._scrub(message)
            raise ProvisionError(f"provisioner reports failure for {shown}: {message}")
        return PollResult.DONE

    async def forget(self, system_id: str) -> None:
        """DELETE the job; a 404 is fine, other failures are logged, never raised."""
        url = self.job_url(system_id)
        try:
            response = await self._request("DELETE", url)
        except ProvisionError as exc:
            log.warning("provision_forget_failed", system_id=system_id, error=str(exc))
            return
        if not response.is_success and response.status_code != 404:
            error = str(self._error("DELETE", url, response))
            log.warning("provision_forget_failed", system_id=system_id, error=error)

    async def aclose(self) -> None:
        """Close the HTTP client if this provisioner created it."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


def provisioner_for(
    url: str, ttl: float, token: str | None = None, runs_dir: Path | None = None
) -> ScriptProvisioner | HttpProvisioner | None:
    """The provisioner `PROVISION_URL` asks for; None when it is empty (Deployed is final).

    `token` is only sent by an HTTP provisioner; a script never sees it. `runs_dir` is where
    a script's result files wait for the store.
    """
    text = url.strip()
    if not text:
        return None
    if ttl < 0:
        raise ConfigError(f"PROVISION_TTL: {ttl:g}s is negative; give 0 (no limit) or like 1h")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("http", "https"):
        return HttpProvisioner(text, ttl, token=token)
    if scheme:
        raise ConfigError(f"PROVISION_URL: unsupported scheme {scheme!r}; use a path or http(s)://")
    return ScriptProvisioner(os.path.expanduser(text), ttl, runs_dir=runs_dir)
