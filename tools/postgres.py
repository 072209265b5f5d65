"""A PostgreSQL cluster of the run's own: initdb under a directory we choose, one
postgres process on a loopback address, one database and one role per service.

Never the machine's cluster: nothing here reads /etc/postgresql or talks to port 5432
unless told to. The server binaries are Debian's postgresql-15 (``make setup`` installs
it through apt as root). initdb and postgres refuse to run as root, so as root the
cluster directory is handed to the ``postgres`` user and both run as that user.

That user must be able to reach the directory. A checkout under /root (0700) is out of
its reach, so there the server's own files (data, socket, log) go to a directory of their
own, /var/tmp/meshmart-postgres-<hash of the cluster directory>, and ``server`` in the
cluster directory links to it; what only we read (roles.json, cluster.json) stays put.

Who may do what (docs/design.md "PostgreSQL"):

- the superuser ``postgres`` logs in only over the cluster's Unix socket (trust), which
  lives in the cluster directory;
- over TCP every login needs its password (scram-sha-256);
- each service gets a role and a database of the same name, owned by that role; CONNECT
  on it is revoked from PUBLIC, so no other service's role can even open it, and its
  tables (owned by its role) grant nothing to anyone else.

    python -m tools.postgres up [--dir .run/postgres] [--address 127.0.0.1] [--port 55432]
    python -m tools.postgres url payment     # prints MESHMART_DATABASE_URL for payment
    python -m tools.postgres down
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from tools.logged_process import start_logged_process

BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"),)
SERVER_USER = "postgres"
SUPERUSER = "postgres"
DEFAULT_DIR = Path(".run/postgres")
DEFAULT_PORT = 55432
# Where the server's files go when the server user cannot reach the cluster directory.
OUTSIDE_ROOT = Path("/var/tmp")
READY_LINE = b"database system is ready to accept connections"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# The services that keep state (their app.py opens a Database).
SERVICES = ("user", "catalog", "inventory", "cart", "payment", "order", "notification", "analytics")


class ClusterError(RuntimeError):
    """The cluster cannot be made or started here (the message says why and what to do)."""


def server_binary(name: str) -> Path:
    """``initdb`` or ``postgres`` of Debian's postgresql-15 (the server package)."""
    for directory in BIN_DIRS:
        if (directory / name).is_file():
            return directory / name
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ClusterError(
        f"{name} not found: the PostgreSQL 15 server is not installed "
        "(make setup installs it with apt-get as root; or: apt-get install postgresql-15)"
    )


def role_name(service: str) -> str:
    """The role and database of ``service``: "payment", "order" (quoted where needed)."""
    name = service.replace("-", "_")
    if _NAME.match(name) is None:
        raise ValueError(f"not a service name: {service!r}")
    return name


@dataclass
class ServiceDatabase:
    service: str
    role: str
    database: str
    password: str
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://{self.role}:{self.password}@{self.host}:{self.port}/{self.database}"


class PostgresCluster:
    """One postgres server over the data directory ``<directory>/data``."""

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        durable: bool = True,
    ) -> None:
        self._as_user = SERVER_USER if os.geteuid() == 0 else None
        self.directory = directory.resolve()
        self.roles_path = self.directory / "roles.json"
        self.pid_path = self.directory / "postgres.pid"
        self.host = host
        self.port = port
        # durable=False (tests): no fsync at all; a crash of the machine loses the cluster,
        # which a test run's cluster does not outlive anyway.
        self.durable = durable
        self._process: subprocess.Popen[bytes] | None = None

    # What the server itself opens (as the server user): its data, socket and log. Found
    # when first needed (a probe as that user), not when the object is made: the roles'
    # passwords (roles.json) need none of it.
    @functools.cached_property
    def server_directory(self) -> Path:
        return self._reachable(self.directory)

    @property
    def data(self) -> Path:
        return self.server_directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.server_directory / "socket"

    @property
    def log_path(self) -> Path:
        return self.server_directory / "postgres.log"

    # -- lifecycle ------------------------------------------------------------------

    def init(self) -> None:
        """initdb, once: the superuser trusted on the socket only, passwords over TCP."""
        if (self.data / "PG_VERSION").exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._hand_over(self.server_directory, self.socket_dir)
        link = self.directory / "server"
        if self.server_directory != self.directory and not link.is_symlink():
            link.symlink_to(self.server_directory, target_is_directory=True)
        command = [
            str(server_binary("initdb")),
            "--pgdata", str(self.data),
            "--username", SUPERUSER,
            "--auth-local", "trust",
            "--auth-host", "scram-sha-256",
            "--encoding", "UTF8",
            "--no-locale",
        ]  # fmt: skip
        if not self.durable:
            command.append("--no-sync")
        result = subprocess.run(command, capture_output=True, user=self._as_user,
                                cwd=self.server_directory, check=False)
        if result.returncode != 0:
            raise ClusterError(f"initdb failed: {result.stderr.decode(errors='replace')}")

    def _server_options(self) -> list[str]:
        options = [
            "-k", str(self.socket_dir),
            "-h", self.host,
            "-p", str(self.port),
            "-c", "max_connections=200",
        ]  # fmt: skip
        if not self.durable:
            options += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        return options

    def start(self, timeout: float = 30.0) -> None:
        """Start postgres as our child and return once it accepts connections (its own log
        line). It dies with this process (PR_SET_PDEATHSIG) if ``stop`` never runs."""
        self.init()
        command = [str(server_binary("postgres")), "-D", str(self.data), *self._server_options()]
        process, ready = start_logged_process(
            command, log_path=self.log_path, ready_line=READY_LINE,
            # SIGQUIT: PostgreSQL's immediate shutdown, when we die without stopping it.
            death_signal=signal.SIGQUIT, name="postgres", user=self._as_user,
            cwd=self.server_directory,  # not the checkout, which it may not enter
        )
        self._process = process
        self.pid_path.write_text(f"{process.pid}\n")
        if not ready.wait(timeout):
            self.stop()
            raise ClusterError(f"postgres not ready within {timeout:g}s; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        if self._process is not None and self._process.poll() is None:
            return self._process.pid
        return None

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT) of the server we started, by its pid; SIGKILL to its
        process group after ``timeout``."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.pid_path.unlink(missing_ok=True)

    def start_detached(self, timeout: float = 30.0) -> int:
        """Start postgres in the background with pg_ctl (it outlives this process; the
        command line's ``up``); returns its pid."""
        self.init()
        result = subprocess.run(
            [
                str(server_binary("pg_ctl")), "start", "--wait", f"--timeout={int(timeout)}",
                "--pgdata", str(self.data), "--log", str(self.log_path),
                "--options", " ".join(self._server_options()),
            ],
            capture_output=True, user=self._as_user, cwd=self.server_directory, check=False,
        )  # fmt: skip
        pid = self.detached_pid()
        if result.returncode != 0 or pid is None:
            raise ClusterError(
                f"pg_ctl start failed: {result.stderr.decode(errors='replace').strip()};"
                f" see {self.log_path}"
            )
        return pid

    def detached_pid(self) -> int | None:
        """The pid of a running server of this data directory (postmaster.pid), or None."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def stop_detached(self, timeout: float = 30.0) -> None:
        """Fast shutdown with pg_ctl (it signals the pid in postmaster.pid and waits)."""
        result = subprocess.run(
            [
                str(server_binary("pg_ctl")), "stop", "--wait", f"--timeout={int(timeout)}",
                "--pgdata", str(self.data), "--mode", "fast",
            ],
            capture_output=True, user=self._as_user, cwd=self.server_directory, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise ClusterError(
                f"pg_ctl stop failed: {result.stderr.decode(errors='replace').strip()}"
            )

    # -- databases and roles ----------------------------------------------------------

    def superuser(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A connection as the superuser, over the cluster's Unix socket."""
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname=database,
            autocommit=True,
        )  # fmt: skip

    def service_database(self, service: str, database: str | None = None) -> ServiceDatabase:
        """The role of ``service`` (made once, with its password kept in roles.json) and
        its database ``database`` (default: the role's name), made if missing and owned
        by the role; nobody else may connect to it."""
        role = role_name(service)
        database = database or role
        if _NAME.match(database) is None:
            raise ValueError(f"not a database name: {database!r}")
        passwords = self._passwords()
        with self.superuser() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
            ).fetchone()
            # A password chosen before the server ran (passwords_for) makes its role here.
            if role not in passwords or exists is None:
                passwords.setdefault(role, secrets.token_urlsafe(18))
                verb = "ALTER" if exists else "CREATE"
                conn.execute(
                    sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(passwords[role])
                    )
                )
                self._save_passwords(passwords)
            made = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if made.fetchone() is None:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(role)
                    )
                )
                conn.execute(
                    sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                        sql.Identifier(database)
                    )
                )
        return ServiceDatabase(service, role, database, passwords[role], self.host, self.port)

    def passwords_for(self, services: Iterable[str]) -> dict[str, str]:
        """role -> password for each of ``services``, chosen now where roles.json has none
        yet; the roles themselves are made by ``service_database`` (a mesh writes its
        services' URLs before the server runs: tools/mesh/postgres.py)."""
        passwords = self._passwords()
        missing = [role_name(s) for s in services if role_name(s) not in passwords]
        if missing:
            for role in missing:
                passwords[role] = secrets.token_urlsafe(18)
            self.directory.mkdir(parents=True, exist_ok=True)
            self._save_passwords(passwords)
        return passwords

    def drop_database(self, database: str) -> None:
        with self.superuser() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )

    def _passwords(self) -> dict[str, str]:
        if not self.roles_path.exists():
            return {}
        loaded: dict[str, str] = json.loads(self.roles_path.read_text())
        return loaded

    def _save_passwords(self, passwords: dict[str, str]) -> None:
        self.roles_path.touch(mode=0o600, exist_ok=True)
        self.roles_path.write_text(json.dumps(passwords, indent=2, sort_keys=True) + "\n")

    def _reachable(self, directory: Path) -> Path:
        """``directory`` when the server user can reach it (or we are not root), else the
        directory of its own under OUTSIDE_ROOT, the same for the same ``directory``."""
        if self._as_user is None:
            return directory
        # The directory itself is handed to that user (a private 0700 one of ours too):
        # asked of the kernel as that user, each ancestor must let it through (what we
        # make below ``existing`` is 0755).
        existing = next(p for p in directory.parents if p.exists())
        probe = subprocess.run(["test", "-x", str(existing)], user=self._as_user, check=False)
        if probe.returncode == 0:
            return directory
        digest = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
        return OUTSIDE_ROOT / f"meshmart-postgres-{digest}"

    def _hand_over(self, *paths: Path) -> None:
        """As root, the server user owns the cluster's directories (initdb insists)."""
        if self._as_user is None:
            return
        entry = pwd.getpwnam(self._as_user)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)
            path.chmod(0o700)


# -- the command line (README "On PostgreSQL") ------------------------------------------


def _saved_cluster(directory: Path) -> PostgresCluster:
    """The cluster ``up`` made in ``directory``, at the address and port it chose."""
    path = directory / "cluster.json"
    settings: dict[str, object] = json.loads(path.read_text()) if path.exists() else {}
    return PostgresCluster(
        directory,
        host=str(settings.get("address", "127.0.0.1")),
        port=int(str(settings.get("port", DEFAULT_PORT))),
    )


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.postgres", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="cluster directory")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="initdb (once), start, one database and role per service")
    up.add_argument("--address", default="127.0.0.1")
    up.add_argument("--port", type=int, default=DEFAULT_PORT)
    url = commands.add_parser("url", help="print the MESHMART_DATABASE_URL of a service")
    url.add_argument("service", choices=SERVICES)
    commands.add_parser("down", help="stop the cluster (its data stays in --dir)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    directory: Path = args.dir
    try:
        if args.command == "up":
            cluster = PostgresCluster(directory, host=args.address, port=args.port)
            started = cluster.detached_pid() or cluster.start_detached()
            (cluster.directory / "cluster.json").write_text(
                json.dumps({"address": args.address, "port": args.port}) + "\n"
            )
            for service in SERVICES:
                cluster.service_database(service)
            print(f"postgres (pid {started}) on {args.address}:{args.port}, data in {directory}")
            print("one database and one role per service: " + ", ".join(SERVICES))
            print("a service's URL: python -m tools.postgres url <service>")
            return 0
        cluster = _saved_cluster(directory)
        pid = cluster.detached_pid()
        if args.command == "url":
            if pid is None:
                raise ClusterError(
                    f"no cluster running in {directory} (python -m tools.postgres up)"
                )
            print(cluster.service_database(args.service).url)
            return 0
        if pid is None:
            print(f"no cluster running in {directory}")
            return 0
        cluster.stop_detached()
        print(f"postgres (pid {pid}) stopped; its data stays in {directory}")
        return 0
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
