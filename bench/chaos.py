"""Chaos run: do sessions survive Ctrl-C, SIGTERM, kill -9, late and lost answers and a server restart?

    .venv/bin/python bench/chaos.py [--seed N] [--duration 60] [--processes 12]
                                    [--modes password oauth oauth-grace] [--grace 30] [--cli "auth token"] ...

Per mode, against its own reference server (loopback, TLS) with 4-second access tokens: a spec-kitty home whose
credentials file already holds a foreign table (the tracker's `[tracker.providers.jira]`, with a comment) gets a
session, then `--processes` client processes share it for `--duration` seconds, as several spec-kitty processes on
one laptop do: library clients (bench/_chaos_client.py: get_access_token, obtain_ws_token, BearerAuth requests) and
CLI commands (`kitty-auth auth status`, `auth status --json`, `auth token` once the CLI has it, more with --cli)
run one after another in --cli-processes of them. A process that ends is replaced. Meanwhile, at random (seeded):
SIGINT, SIGTERM and SIGKILL to the clients (one per process; half of them aimed at a process holding the credentials
lock, i.e. refreshing), late answers (the refresh is processed, its answer sent 1-3 s late; most are followed by a
signal to the client waiting for that answer), 5xx answers and dropped connections (on the refresh endpoint after
the refresh was processed, or before it, or on other endpoints), and one restart of the server (same port, same
database: tokens survive it). The library clients turn SIGTERM into KeyboardInterrupt, as a host that wants a clean
SIGTERM does (the library installs no handler; in a host without one SIGTERM kills at once, which is SIGKILL's case).
The same seed gives the same sequence of events; what they hit depends on timing.

Modes: `password` (simplejwt: a refresh token is blacklisted as soon as it is rotated), `oauth` (django-oauth-
toolkit, no grace period), `oauth-grace` (django-oauth-toolkit with REFRESH_TOKEN_GRACE_PERIOD_SECONDS = --grace:
a rotated-out refresh token sent again within it gets the same new pair once more).

A session is lost when the stored refresh token is no longer accepted by the server and nothing newer is stored:
the next refresh says `Session expired`. The run watches the file and asks the server (its control API) about the
stored token; a loss is either a file a client cleared after its refresh was refused, or a stored token the server
has refused for SETTLE seconds. Each loss is traced, through the server's journal of issued tokens, to the request
that rotated the lost token, and attributed to what lost that request's answer: a drop or 5xx fault on it; else the
restart, or a signal (to the lock holder first), during it; else its late-answer fault; else the last injected event
before it; else "unknown". After a loss the run logs in again (no faults pending meanwhile) and goes on.

Reported per mode: sessions lost per cause; refresh rotations per access-token lifetime (single-flight: about 4/3,
as a 4 s token is refreshed in its last second); what the clients saw; and checks that make the exit status
non-zero when they fail: the credentials file parses, is 0600 and still holds the foreign table byte for byte; no
temporary file is left in the home; no token the server issued (its journal: access, refresh, ws tokens, device
codes), nor the password, appears in any client's stdout or stderr, the login commands' output, or the server log.
Losses are measured, not failures. Every wait is bounded; every process started is ended, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import BENCH, BIN, PYTHON, TESTS, clean_env, header, machine, this_command  # noqa: E402

sys.path.insert(0, str(TESTS))
from refserver import ME_PATH, OAUTH_TOKEN_PATH, REFRESH_PATH, SYNC_HEALTH_PATH, WS_TOKEN_PATH  # noqa: E402
from refserver.harness import DEMO_PASSWORD, DEMO_USERNAME, RefServer, RefServerError  # noqa: E402

ACCESS_LIFETIME = 4.0  # seconds
REFRESH_MARGIN = 1.0  # seconds: ExpiryPolicy refreshes a 4 s token in its last quarter
CLIENT_SCRIPT = BENCH / "_chaos_client.py"
KITTY_AUTH = str(BIN / "kitty-auth")

# The tracker's table, as spec-kitty's tracker writes it into the same file; it must come out byte for byte.
FOREIGN_TABLE = (
    b"# Jira, written by spec-kitty tracker\n"
    b"[tracker.providers.jira]\n"
    b'url = "https://jira.example.test"  # the team\'s board\n'
    b'project = "KITTY"\n'
)

# CLI commands the clients run beside the library (each after `kitty-auth auth`); `token` joins them once the CLI
# has it, others with --cli. A command whose stdout is the access token is in TOKEN_COMMANDS: that stdout is left
# out of the leak check (stderr is not).
CLI_COMMANDS = ["status", "status --json"]
TOKEN_COMMANDS = {"token"}
CLI_PAUSE = (0.3, 1.0)  # seconds between two commands of a CLI slot
LIBRARY_LIFETIME = (6.0, 25.0)  # seconds a library client runs unless interrupted

EVENT_WEIGHTS = {"SIGINT": 4, "SIGTERM": 3, "SIGKILL": 2, "late answer": 3, "5xx": 2, "drop": 2}
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
CAUSES = ["SIGINT", "SIGTERM", "SIGKILL", "late answer", "5xx", "drop", "restart", "unknown"]
EVENT_GAP = (0.8, 2.2)  # seconds between injected events
EVENT_SPACING = 0.5  # seconds at least between two events (an aimed signal or a restart may delay the next ones)
AIM_SHARE = 0.5  # of the signals: wait (at most AIM_WAIT) for a client holding the credentials lock
AIM_WAIT = 2.0
LATE_THEN_SIGNAL = 0.6  # of the late answers: followed by a signal to the client waiting for it, once it has
SLOW_HOLD = 0.3  # held the lock this long (seconds; a normal refresh takes less), waiting at most AIM_WAIT_SLOW
AIM_WAIT_SLOW = 6.0
SLOW_REFRESH = " in a slow refresh"
LATE_DELAY = (1.0, 3.0)
OTHER_PATHS = (ME_PATH, SYNC_HEALTH_PATH, WS_TOKEN_PATH)
FIRST_EVENT = 3.0  # seconds after the clients start
QUIET_END = 6.0  # seconds at the end without new events, so the last ones settle

TICK = 0.05  # seconds: the run's loop
CHECK_EVERY = 0.5  # seconds between asking the server about the stored refresh token
SETTLE = 6.0  # seconds a stored refresh token stays refused before that counts as a loss (a late answer may still land)
LOGIN_LIMIT = 40.0  # seconds for one login attempt
LOGIN_ATTEMPTS = 5
STOP_LIMIT = 25.0  # seconds for the clients to finish by themselves at the end
RESTART_WINDOW = (0.35, 0.65)  # of the run


@dataclasses.dataclass(frozen=True)
class Mode:
    name: str
    refresh_path: str
    options: dict[str, Any]
    login: str  # "password" or "device"
    about: str


def modes(grace: int) -> dict[str, Mode]:
    return {
        "password": Mode("password", REFRESH_PATH, {"oauth_metadata": "off", "oauth_endpoints": False}, "password",
                         "password server (simplejwt, rotated refresh tokens blacklisted at once)"),
        "oauth": Mode("oauth", OAUTH_TOKEN_PATH, {"oauth_refresh_grace_period": 0}, "device",
                      "OAuth server (django-oauth-toolkit), no grace period"),
        "oauth-grace": Mode("oauth-grace", OAUTH_TOKEN_PATH, {"oauth_refresh_grace_period": grace}, "device",
                            f"OAuth server (django-oauth-toolkit), REFRESH_TOKEN_GRACE_PERIOD_SECONDS = {grace}"),
    }


@dataclasses.dataclass
class Client:
    number: int
    kind: str  # "library" or the CLI command, e.g. "auth status"
    process: subprocess.Popen[bytes]
    out: Path
    err: Path
    stdout_is_token: bool = False
    signal: str | None = None  # the one signal this run sent it

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclasses.dataclass
class Event:
    time: float
    kind: str  # an EVENT_WEIGHTS key, or "restart"
    detail: str = ""
    fault_id: int | None = None
    epoch: int = 0  # server starts before it: fault ids restart at 1 with each start
    delay: float = 0.0  # a late answer's
    held_lock: bool = False  # a signal's target held the credentials lock
    ended: float | None = None  # restart: when the server was back


@dataclasses.dataclass
class Loss:
    detected: float
    how: str  # "cleared" (a client's refresh was refused) or "refused" (still stored)
    token: str
    cause: str = "unknown"
    evidence: str = ""


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def stored_refresh(credentials: Path) -> str | None:
    """The stored refresh token, or None when no session is stored (or the file cannot be read now)."""
    try:
        data = tomllib.loads(credentials.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    tokens = data.get("tokens")
    refresh = tokens.get("refresh") if isinstance(tokens, dict) else None
    return refresh if isinstance(refresh, str) and refresh else None


def lock_holder(lock: Path) -> int | None:
    try:
        text = lock.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class ModeRun:
    """One mode's run: its server, home, clients, injected events and what came of them."""

    def __init__(self, mode: Mode, args: argparse.Namespace, seed: int, workdir: Path, cli_commands: list[str]) -> None:
        self.mode, self.args, self.workdir = mode, args, workdir
        self.rng = random.Random(seed)
        self.cli_commands = cli_commands
        self.home = workdir / "home"
        self.credentials = self.home / "credentials"
        self.lock = self.home / "credentials.lock"
        self.outputs = workdir / "out"
        self.server = RefServer(workdir / "server", access_lifetime=ACCESS_LIFETIME)
        self.clients: list[Client] = []
        self.slots: list[Client | None] = [None] * args.processes
        self.logins = 0  # login commands started
        self.events: list[Event] = []
        self.losses: list[Loss] = []
        self.epoch = 0
        self.stats: list[dict[str, Any]] = []  # the server's statistics, one per start
        self.relogins = 0
        self.relogin_failures = 0
        self.stragglers = 0
        self.started = 0.0
        self._seen: str | None = None  # the last refresh token seen stored
        self._refused_since: float | None = None
        self._file_state: tuple[int, int, int] | None = None
        self._next_check = 0.0
        self._login: dict[str, Any] | None = None
        self._aim: tuple[Event, float, float] | None = None  # a signal waiting for its target: deadline, hold
        self._holder: tuple[int | None, float] = (None, 0.0)  # who holds the credentials lock, since when
        self._slot_ready = [0.0] * args.processes
        self._next_event = 0.0

    # ------------------------------------------------------------------------------------------------ set-up

    def env(self) -> dict[str, str]:
        return clean_env(SPEC_KITTY_HOME=str(self.home), SPEC_KITTY_SAAS_URL=self.server.url,
                         SSL_CERT_FILE=str(self.server.ca_path), SPEC_KITTY_LOG_LEVEL="DEBUG", PYTHONUNBUFFERED="1")

    def prepare(self) -> None:
        self.home.mkdir(mode=0o700, parents=True)
        self.outputs.mkdir()
        fd = os.open(self.credentials, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(FOREIGN_TABLE)
        self.server.start()
        self.server.set_options(**self.mode.options)

    # ------------------------------------------------------------------------------------------------ logins

    def start_login(self) -> None:
        """Start a login command (password on stdin, or the device flow approved through the server's pages)."""
        out, err = self.outputs / f"login-{self.logins}.out", self.outputs / f"login-{self.logins}.err"
        self.logins += 1
        if self.mode.login == "password":
            argv = [KITTY_AUTH, "auth", "login", "-u", DEMO_USERNAME, "--password-stdin", "--force"]
        else:
            argv = [KITTY_AUTH, "auth", "login", "--device", "--force"]
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=stdout, stderr=stderr, env=self.env(),
                                       start_new_session=True)
        assert process.stdin is not None
        if self.mode.login == "password":
            process.stdin.write((DEMO_PASSWORD + "\n").encode())
        process.stdin.close()
        self._login = {"process": process, "err": err, "deadline": time.monotonic() + LOGIN_LIMIT,
                       "approved": self.mode.login == "password", "attempt": (self._login or {}).get("attempt", 0) + 1}

    def step_login(self) -> bool | None:
        """Advance the login in progress: True once logged in, False once failed, None while it runs."""
        login = self._login
        assert login is not None
        process: subprocess.Popen[bytes] = login["process"]
        if not login["approved"]:
            url = device_url(login["err"])
            if url is not None:
                login["approved"] = True
                with contextlib.suppress(RefServerError, OSError):
                    self.server.approve_device(url, timeout=20)
        if process.poll() is None:
            if time.monotonic() < login["deadline"]:
                return None
            process.kill()
            process.wait()
        return process.returncode == 0 and stored_refresh(self.credentials) is not None

    def login_blocking(self) -> None:
        self._login = None
        for _ in range(LOGIN_ATTEMPTS):
            self.start_login()
            while (done := self.step_login()) is None:
                time.sleep(TICK)
            if done:
                self._login = None
                self._seen = stored_refresh(self.credentials)
                return
        raise SystemExit(f"chaos ({self.mode.name}): could not log in; see {self.outputs}")

    # ----------------------------------------------------------------------------------------------- clients

    def spawn(self, slot: int, until: float) -> None:
        number = len(self.clients)
        if slot >= self.args.cli_processes or not self.cli_commands:
            kind = "library"
            lifetime = self.rng.uniform(*LIBRARY_LIFETIME)
            argv = [str(PYTHON), str(CLIENT_SCRIPT), str(self.rng.randrange(2**31)),
                    f"{min(until, time.time() + lifetime):.3f}", self.server.url]
        else:
            command = self.rng.choice(self.cli_commands)
            kind = f"auth {command}"
            argv = [KITTY_AUTH, "auth", *command.split()]
        out, err = self.outputs / f"{number:04d}.out", self.outputs / f"{number:04d}.err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            # A session of its own: a Ctrl-C at the terminal reaches this run only, which then ends every client.
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=self.env(),
                                       start_new_session=True)
        client = Client(number, kind, process, out, err, stdout_is_token=kind != "library" and kind.split()[1] in TOKEN_COMMANDS)
        self.clients.append(client)
        self.slots[slot] = client

    def supervise(self, until: float, spawning: bool) -> None:
        """Replace every client that ended (a CLI slot after a short pause, as someone typing commands)."""
        now = time.time()
        for slot, client in enumerate(self.slots):
            if client is not None and client.process.poll() is not None:
                self.slots[slot] = client = None
                if slot < self.args.cli_processes:
                    self._slot_ready[slot] = now + self.rng.uniform(*CLI_PAUSE)
            if client is None and spawning and now >= self._slot_ready[slot]:
                self.spawn(slot, until)

    def live_clients(self) -> list[Client]:
        return [c for c in self.slots if c is not None and c.process.poll() is None]

    # -------------------------------------------------------------------------------------------- injections

    def schedule(self, start: float) -> list[tuple[float, str]]:
        """The injected events, seeded: (time, kind); after some late answers a signal aimed at the refresh waiting
        for it ("SIGINT in a slow refresh", ...); one restart somewhere in the middle."""
        plan, moment = [], start + FIRST_EVENT
        end = start + self.args.duration - QUIET_END
        kinds, weights = list(EVENT_WEIGHTS), list(EVENT_WEIGHTS.values())
        signal_weights = [EVENT_WEIGHTS[name] for name in SIGNALS]
        while True:
            moment += self.rng.uniform(*EVENT_GAP)
            if moment >= end:
                break
            kind = self.rng.choices(kinds, weights)[0]
            plan.append((moment, kind))
            if kind == "late answer" and self.rng.random() < LATE_THEN_SIGNAL:
                plan.append((moment + 0.01, self.rng.choices(list(SIGNALS), signal_weights)[0] + SLOW_REFRESH))
        plan.append((start + self.rng.uniform(*RESTART_WINDOW) * self.args.duration, "restart"))
        return sorted(plan)

    def inject(self, kind: str) -> None:
        now = time.time()
        if kind.endswith(SLOW_REFRESH):  # wait for a client that has held the lock a while: a refresh answered late
            self._aim = (Event(now, kind.removesuffix(SLOW_REFRESH)), time.monotonic() + AIM_WAIT_SLOW, SLOW_HOLD)
            return
        if kind in SIGNALS:
            if self.rng.random() < AIM_SHARE:  # wait for any client holding the lock
                self._aim = (Event(now, kind), time.monotonic() + AIM_WAIT, 0.0)
            else:
                self.send_signal(Event(now, kind), self.random_target())
            return
        if kind == "restart":
            self.restart()
            return
        # A late answer, and half the 5xx and drops, hit the refresh endpoint after the refresh was processed (the
        # token rotated, its answer late or lost); a quarter hit it before (nothing rotated); a quarter hit another
        # endpoint.
        roll = self.rng.random()
        path, after_view = self.mode.refresh_path, kind == "late answer" or roll < 0.5
        if kind == "late answer":
            fault: dict[str, Any] = {"delay": round(self.rng.uniform(*LATE_DELAY), 2)}
        else:
            fault = {"status": self.rng.choice([500, 502, 503])} if kind == "5xx" else {"close": True}
            if roll >= 0.75:
                path = self.rng.choice(OTHER_PATHS)
        added = self.server.add_fault(path, count=1, after_view=after_view, **fault)
        if path != self.mode.refresh_path:
            detail = f"on {path}"
        elif after_view:
            detail = f"on {path} after the refresh was processed" + (f", {fault['delay']} s late" if "delay" in fault else "")
        else:
            detail = f"on {path} before the refresh was processed"
        self.record(Event(now, kind, detail, added["id"], self.epoch, fault.get("delay", 0.0)))

    def record(self, event: Event) -> None:
        self.events.append(event)
        self._next_event = time.time() + EVENT_SPACING

    def random_target(self) -> Client | None:
        """Any running client not signalled before (one signal per process keeps each exit's cause plain)."""
        targets = [c for c in self.live_clients() if c.signal is None]
        return self.rng.choice(targets) if targets else None

    def track_lock(self) -> None:
        holder = lock_holder(self.lock)
        if holder != self._holder[0]:
            self._holder = (holder, time.monotonic())

    def step_aim(self) -> None:
        """Send the pending aimed signal once a client has held the credentials lock long enough; at the deadline,
        to a random client."""
        if self._aim is None:
            return
        event, deadline, hold = self._aim
        holder, since = self._holder
        target = next((c for c in self.live_clients() if c.pid == holder and c.signal is None), None)
        if target is not None and time.monotonic() - since < hold:
            target = None
        if target is None and time.monotonic() < deadline:
            return
        self._aim = None
        self.send_signal(event, target or self.random_target())

    def send_signal(self, event: Event, target: Client | None) -> None:
        if target is None or target.process.poll() is not None:
            return
        holder, since = self._holder
        event.held_lock = holder == target.pid and lock_holder(self.lock) == target.pid
        event.detail = f"to {target.kind}" + (f" holding the lock for {time.monotonic() - since:.1f} s" if event.held_lock else "")
        target.process.send_signal(SIGNALS[event.kind])
        target.signal = event.kind
        event.time = time.time()
        self.record(event)

    def restart(self) -> None:
        event = Event(time.time(), "restart", "(stop, then start on the same port and database)")
        self.stats.append(self.server.stats())
        self.server.restart()
        self.epoch += 1
        event.ended = time.time()
        event.detail = f"(stop, then start on the same port and database: back after {event.ended - event.time:.1f} s)"
        self.record(event)

    # ------------------------------------------------------------------------------------------- the session

    def watch_file(self) -> None:
        """Note every refresh token that gets stored (the file is read whenever it changes)."""
        try:
            st = os.stat(self.credentials)
            state = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            state = None
        if state == self._file_state:
            return
        self._file_state = state
        refresh = stored_refresh(self.credentials)
        if refresh is None and self._seen is not None and self._login is None:
            self.lose(Loss(time.time(), "cleared", self._seen))
        elif refresh is not None and refresh != self._seen:
            self._seen, self._refused_since = refresh, None

    def check_session(self, final: bool = False) -> None:
        """Ask the server whether the stored refresh token is still accepted; refused for SETTLE s: lost."""
        now = time.monotonic()
        if self._login is not None or self._seen is None or (now < self._next_check and not final):
            return
        self._next_check = now + CHECK_EVERY
        try:
            accepted = self.server.refresh_token_accepted(self._seen)
        except (RefServerError, OSError):
            return
        if accepted:
            self._refused_since = None
        elif final or (self._refused_since is not None and now - self._refused_since >= SETTLE):
            self.lose(Loss(time.time(), "refused", self._seen))
        elif self._refused_since is None:
            self._refused_since = now

    def lose(self, loss: Loss) -> None:
        self.losses.append(loss)
        self._seen, self._refused_since = None, None
        self._aim = None

    def relogin(self, spawning: bool) -> None:
        """After a loss: no fault pending, then log in again (bounded attempts)."""
        if self._login is None:
            if not self.losses or self._seen is not None or not spawning:
                return
            with contextlib.suppress(RefServerError, OSError):
                self.server.clear_faults()
            self.relogins += 1
            self.start_login()
            return
        done = self.step_login()
        if done is None:
            return
        if done:
            self._login = None
            self._seen = stored_refresh(self.credentials)
            return
        self.relogin_failures += 1
        if self._login["attempt"] >= LOGIN_ATTEMPTS:
            raise SystemExit(f"chaos ({self.mode.name}): could not log in again; see {self.outputs}")
        self.start_login()

    # -------------------------------------------------------------------------------------------------- run

    def run(self) -> None:
        self.prepare()
        self.login_blocking()
        self.started = time.time()
        until = self.started + self.args.duration
        plan = self.schedule(self.started)
        while True:
            now = time.time()
            spawning = now < until
            self.supervise(until, spawning)
            self.watch_file()
            self.relogin(spawning)
            self.check_session()
            self.track_lock()
            self.step_aim()
            # One event at a time, EVENT_SPACING apart, none during a re-login: each loss has one clear cause.
            if plan and plan[0][0] <= now and self._login is None and self._aim is None and now >= self._next_event:
                self.inject(plan.pop(0)[1])
            if not spawning:
                break
            time.sleep(TICK)
        # The end: no new processes; the library clients stop by themselves at `until`.
        deadline = time.monotonic() + STOP_LIMIT
        while self.live_clients() and time.monotonic() < deadline:
            self.watch_file()
            time.sleep(TICK)
        for client in self.live_clients():
            self.stragglers += 1
            client.process.kill()
            client.process.wait()
        self.supervise(until, spawning=False)
        if self._login is not None:  # a re-login still running: let it finish, bounded
            while self.step_login() is None:
                time.sleep(TICK)
            self._login = None
            self._seen = stored_refresh(self.credentials)
        self.watch_file()
        self.check_session(final=True)
        self.stats.append(self.server.stats())

    def stop_everything(self) -> None:
        for client in self.clients:
            if client.process.poll() is None:
                client.process.kill()
                client.process.wait()
        if self._login is not None and self._login["process"].poll() is None:
            self._login["process"].kill()
            self._login["process"].wait()
        self.server.stop()

    # ---------------------------------------------------------------------------------------------- results

    def trace(self, rotation: dict[str, Any]) -> tuple[str, str]:
        """(cause, evidence) for a refresh (an entry of the server's token journal) whose answer was never stored:
        what lost that request's answer (rules in the module docstring)."""
        restarts = [e for e in self.events if e.kind == "restart"]
        faults = {(e.epoch, e.fault_id): e for e in self.events if e.fault_id is not None}
        arrived = rotation["request_time"] or rotation["time"]
        epoch = sum(1 for r in restarts if r.time <= arrived)  # fault ids start again at 1 with each server start
        fault = faults.get((epoch, rotation["fault"])) if rotation["fault"] is not None else None
        if fault is not None and fault.kind in ("5xx", "drop"):
            return fault.kind, f"the refresh that rotated it met the fault ({fault.detail})"
        # What ended the wait for that refresh's answer: the first restart or signal to the lock holder while it was
        # being answered, else the first signal to another process then.
        window = (arrived - 0.1, rotation["time"] + (fault.delay if fault else 0.0) + 0.5)
        during = [e for e in self.events if (e.kind in SIGNALS and window[0] <= e.time <= window[1])
                  or (e.kind == "restart" and e.time <= window[1] and (e.ended or e.time) >= window[0])]
        during.sort(key=lambda e: (not (e.held_lock or e.kind == "restart"), e.time))
        if during:
            return during[0].kind, f"{during[0].kind} {during[0].detail}".strip() + " while the refresh that rotated it was being answered"
        if fault is not None:
            return fault.kind, f"its answer came late ({fault.detail}) and was not stored"
        before = [e for e in self.events if e.time <= rotation["time"] and e.kind != "restart"]
        if before:
            return before[-1].kind, f"the last event before the rotation ({before[-1].kind} {before[-1].detail})"
        return "unknown", "nothing injected before the rotation"

    def attribute(self, journal: list[dict[str, Any]]) -> list[Loss]:
        """Attribute each loss to the last refresh of the lost token (the one whose answer, never stored, ended the
        session); return the answers a grace-period retry recovered (every refresh of a token but its last: its
        answer was never stored, and the token was sent again), attributed the same way."""
        self.events.sort(key=lambda e: e.time)
        refreshes: dict[str, list[dict[str, Any]]] = {}
        for entry in journal:
            if entry["kind"] == "refresh" and entry["rotated_from_sha256"]:
                refreshes.setdefault(entry["rotated_from_sha256"], []).append(entry)
        for loss in self.losses:
            rotations = refreshes.get(sha256(loss.token))
            if rotations:
                loss.cause, loss.evidence = self.trace(rotations[-1])
            else:
                loss.cause, loss.evidence = "unknown", "the server never rotated the lost token"
        recovered = [Loss(rotation["time"], "retried", "", *self.trace(rotation))
                     for rotations in refreshes.values() for rotation in rotations[:-1]]
        return sorted(recovered, key=lambda r: r.detected)

    def results(self) -> dict[str, Any]:
        journal = self.server.issued_tokens()
        recovered = self.attribute(journal)
        seconds, end = self.args.duration, self.started + self.args.duration
        rotations = [j for j in journal if j["kind"] == "refresh" and j["rotated_from_sha256"]
                     and self.started <= j["time"] <= end]
        repeats = Counter(j["rotated_from_sha256"] for j in rotations)
        # Single-flight: two rotations of different tokens less than a second apart (a grace retry aside) mean two
        # processes refreshed the same session at once.
        first_rotation: dict[str, float] = {}
        for j in rotations:
            first_rotation.setdefault(j["rotated_from_sha256"], j["time"])
        firsts = sorted(first_rotation.values())
        back_to_back = sum(1 for a, b in zip(firsts, firsts[1:]) if b - a < 1.0)
        refresh_statuses: Counter[str] = Counter()
        bearer: Counter[str] = Counter()
        for stats in self.stats:
            for entry in stats["log"]:
                if entry["path"] == self.mode.refresh_path:
                    refresh_statuses[str(entry["status"])] += 1
                elif entry["path"] in OTHER_PATHS:
                    bearer["requests"] += 1
                    bearer["401"] += entry["status"] == 401
        outcomes: Counter[str] = Counter()
        exits: Counter[str] = Counter()
        for client in self.clients:
            if client.kind == "library":
                outcomes.update(client_outcomes(client.out))
            exits[f"{client.kind}: {client.signal or 'no signal'} -> {exit_text(client.process.returncode)}"] += 1
        fired = {(epoch, entry["fault"]) for epoch, stats in enumerate(self.stats) for entry in stats["log"] if entry["fault"]}
        unfired = [e for e in self.events if e.fault_id is not None and (e.epoch, e.fault_id) not in fired]
        injected = Counter(e.kind for e in self.events if e not in unfired)
        kinds = {path.name: f"{c.kind}, {c.signal or 'no signal'}" for c in self.clients for path in (c.out, c.err)}
        aimed = Counter(e.kind for e in self.events if e.held_lock)
        checks = self.file_checks() | self.leak_check(journal)
        return {
            "mode": self.mode.name, "about": self.mode.about, "seconds": seconds,
            "processes": len(self.clients), "by_kind": dict(Counter(c.kind for c in self.clients)),
            "injected": dict(injected), "unfired_faults": len(unfired), "signals_to_lock_holder": dict(aimed),
            "events": [{"t": round(e.time - self.started, 2), "kind": e.kind, "detail": e.detail}
                       for e in self.events if e not in unfired],
            "losses": [{"t": round(l.detected - self.started, 2), "how": l.how, "cause": l.cause, "evidence": l.evidence}
                       for l in self.losses],
            "lost": dict(Counter(l.cause for l in self.losses)),
            "recovered": [{"t": round(r.detected - self.started, 2), "cause": r.cause, "evidence": r.evidence}
                          for r in recovered],
            "rotations": len(rotations), "grace_retries": sum(n - 1 for n in repeats.values()),
            "per_lifetime": len(rotations) / (seconds / ACCESS_LIFETIME),
            "back_to_back": back_to_back,
            "refresh_endpoint_statuses": dict(refresh_statuses), "bearer_401": (bearer["401"], bearer["requests"]),
            "outcomes": dict(outcomes), "exits": dict(exits), "relogins": self.relogins,
            "relogin_failures": self.relogin_failures, "stragglers": self.stragglers,
            "tracebacks": {f"{p.name} ({kinds.get(p.name, 'login')})": last_exception(p)
                           for p in self.output_files() if b"Traceback (most recent" in p.read_bytes()},
            "checks": checks,
        }

    def output_files(self) -> list[Path]:
        return sorted(self.outputs.iterdir())

    def file_checks(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        try:
            data = self.credentials.read_bytes()
            mode = stat.S_IMODE(os.lstat(self.credentials).st_mode)
        except OSError as exc:
            return {"file parses": False, "file 0600": False, "foreign table intact": False,
                    "no temporary files": False, "note": f"credentials file: {exc.strerror}"}
        try:
            tomllib.loads(data.decode("utf-8"))
            checks["file parses"] = True
        except (UnicodeDecodeError, tomllib.TOMLDecodeError):
            checks["file parses"] = False
        checks["file 0600"] = mode == 0o600
        checks["foreign table intact"] = FOREIGN_TABLE in data
        leftovers = [p.name for p in self.home.iterdir() if ".tmp" in p.name]
        checks["no temporary files"] = not leftovers
        if leftovers:
            checks["temporary files"] = leftovers
        checks["session at the end"] = "stored" if stored_refresh(self.credentials) else "none"
        aside = [p.name for p in self.home.iterdir() if "unparsable" in p.name]
        if aside:
            checks["kept aside"] = aside
        return checks

    def leak_check(self, journal: list[dict[str, Any]]) -> dict[str, Any]:
        secrets = {j["token"] for j in journal if isinstance(j.get("token"), str)}
        # A JWT's header is predictable: its payload or signature alone is as good as the token.
        secrets |= {part for s in list(secrets) if s.count(".") == 2 for part in s.split(".")[1:] if len(part) >= 16}
        secrets = {s for s in secrets if len(s) >= 8} | {DEMO_PASSWORD}
        texts: list[tuple[str, str]] = []
        token_stdouts = {c.out for c in self.clients if c.stdout_is_token}
        for path in self.output_files():
            if path not in token_stdouts:
                texts.append((path.name, path.read_text(errors="replace")))
        texts.append(("server log", server_log(self.server.log_path)))
        leaks = sorted({name for name, text in texts for secret in secrets if secret in text})
        return {"tokens checked": len(journal), "no token in any output": not leaks, **({"leaked in": leaks} if leaks else {})}


def device_url(err: Path) -> str | None:
    try:
        lines = [line.strip() for line in err.read_text(errors="replace").splitlines()]
    except OSError:
        return None
    marker = "To log in, open this URL in a browser on any device:"
    if marker in lines and lines.index(marker) + 1 < len(lines):
        return lines[lines.index(marker) + 1] or None
    return None


def client_outcomes(out: Path) -> Counter[str]:
    try:
        lines = out.read_text(errors="replace").splitlines()
        return Counter(json.loads(lines[-1])["outcomes"]) if lines else Counter()
    except (OSError, ValueError, KeyError, TypeError):
        return Counter()


def last_exception(path: Path) -> str:
    """The exception that ended the last traceback in an output file, and where (innermost frame)."""
    lines = path.read_text(errors="replace").splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("Traceback (most recent"))
    frame, exception = "", ""
    for line in lines[start + 1:]:
        if line.startswith("  File "):
            frame = re.sub(r'^  File "(?:.*/)?([^/"]+)", line (\d+), in (.*)$', r"\1:\2 \3", line)
        elif line and not line.startswith(" "):
            exception = line
            break
    return f"{exception[:160]} at {frame}"


def exit_text(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit {code}"


def server_log(path: Path) -> str:
    """The server's log without its start-up banners, which show the seeded demo password to whoever started it by
    hand (printed before any request: not a leak of the client's)."""
    text = path.read_text(errors="replace")
    return re.sub(r"(?ms)^refserver ready on .*?^  stop with Ctrl-C$", "", text)


def cli_commands(extra: list[str]) -> list[str]:
    """The CLI commands the clients run: the defaults, `auth token` once the CLI has it, and --cli ones."""
    commands = list(CLI_COMMANDS)
    probe = subprocess.run([KITTY_AUTH, "auth", "token", "--help"], capture_output=True, timeout=60,
                           env=clean_env(), stdin=subprocess.DEVNULL)
    if probe.returncode == 0:
        commands.append("token")
    for command in extra:
        command = command.removeprefix("auth ").strip()
        if command and command not in commands:
            commands.append(command)
    return commands


# ---------------------------------------------------------------------------------------------------- report


def print_mode(result: dict[str, Any]) -> None:
    print(f"\n-- {result['mode']}: {result['about']}")
    print(f"   {result['seconds']:.0f} s, {result['processes']} processes started "
          f"({', '.join(f'{n} {k}' for k, n in sorted(result['by_kind'].items()))})")
    print("   injected: " + ", ".join(f"{result['injected'].get(k, 0)} {k}" for k in [*EVENT_WEIGHTS, "restart"])
          + "; signals to the process holding the credentials lock: "
          + (", ".join(f"{n} {k}" for k, n in sorted(result["signals_to_lock_holder"].items())) or "none")
          + f"; faults added but never met (cleared for a re-login, or by the restart): {result['unfired_faults']}")
    for event in result["events"]:
        print(f"     t={event['t']:>6.2f} s  {event['kind']:<11} {event['detail']}")
    lost = result["lost"]
    print(f"   sessions lost: {sum(lost.values())}" + (" (" + ", ".join(f"{lost[c]} {c}" for c in CAUSES if c in lost) + ")" if lost else ""))
    for loss in result["losses"]:
        print(f"     t={loss['t']:>6.2f} s  {loss['cause']:<11} {loss['how']:<8} {loss['evidence']}")
    print(f"   refresh rotations: {result['rotations']} in {result['seconds']:.0f} s = {result['per_lifetime']:.2f} per "
          f"{ACCESS_LIFETIME:g} s access lifetime"
          + (f"; {result['grace_retries']} of them a rotated-out token sent again within the grace period" if result["grace_retries"] else "")
          + f" (single-flight: about {ACCESS_LIFETIME / (ACCESS_LIFETIME - REFRESH_MARGIN):.2f}, one refresh in each "
          "token's last second, while a session is stored and the server is up); rotations of two different tokens "
          f"less than 1 s apart: {result['back_to_back']}")
    if result["recovered"]:
        print(f"   answers lost but recovered by a retry with the stored token within the grace period: {len(result['recovered'])}"
              + " (" + ", ".join(f"{n} {c}" for c, n in Counter(r["cause"] for r in result["recovered"]).items()) + ")")
        for item in result["recovered"]:
            print(f"     t={item['t']:>6.2f} s  {item['cause']:<11} {item['evidence']}")
    print(f"   refresh endpoint answers: {dict(sorted(result['refresh_endpoint_statuses'].items()))}; Bearer requests "
          f"(me, sync health, ws-token) answered 401: {result['bearer_401'][0]} of {result['bearer_401'][1]}")
    print(f"   re-logins after a loss: {result['relogins']} ({result['relogin_failures']} attempts failed); "
          f"clients stopped at the end by SIGKILL: {result['stragglers']}")
    print("   library calls: " + ", ".join(f"{k} {n}" for k, n in sorted(result["outcomes"].items())))
    print("   exits: " + "; ".join(f"{k} x{n}" for k, n in sorted(result["exits"].items())))
    for name, exception in result["tracebacks"].items():
        print(f"   traceback in out/{name}: {exception}")
    checks = result["checks"]
    print("   checks: " + ", ".join(f"{k}: {v}" for k, v in checks.items()))


def summary_table(results: list[dict[str, Any]]) -> list[str]:
    """Markdown: per mode, sessions lost / events injected for each cause, refreshes per lifetime, the checks."""
    lines = ["| server | " + " | ".join(CAUSES) + " | lost | recovered by a grace-period retry | refreshes per 4 s "
             "| refreshes < 1 s apart | file, tmp, leak checks |",
             "|---|" + "---:|" * len(CAUSES) + "---:|---:|---:|---:|---|"]
    for r in results:
        cells = [f"{r['lost'].get(c, 0)}/{r['injected'].get(c, 0)}" if c != "unknown" else str(r["lost"].get(c, 0))
                 for c in CAUSES]
        for i, cause in enumerate(CAUSES):  # signals: how many of them hit the process holding the lock
            if cause in SIGNALS:
                cells[i] += f" ({r['signals_to_lock_holder'].get(cause, 0)})"
        ok = all(r["checks"].get(k) for k in FAILING_CHECKS)
        recovered = Counter(item["cause"] for item in r["recovered"])
        recovered_text = ", ".join(f"{n} {c}" for c, n in recovered.items()) or "0"
        lines.append(f"| {r['about']} | " + " | ".join(cells) + f" | {sum(r['lost'].values())} | {recovered_text} | "
                     + f"{r['per_lifetime']:.2f} | {r['back_to_back']} | "
                     + ("pass" if ok else "FAIL") + " |")
    return lines


FAILING_CHECKS = ("file parses", "file 0600", "foreign table intact", "no temporary files", "no token in any output")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="the run's random seed (default: a new one, printed)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of chaos per mode")
    parser.add_argument("--processes", type=int, default=12, help="client processes running at once")
    parser.add_argument("--modes", nargs="+", default=["password", "oauth", "oauth-grace"],
                        choices=["password", "oauth", "oauth-grace"])
    parser.add_argument("--cli-processes", type=int, default=3,
                        help="how many of the processes are CLI commands run one after another (the rest: library)")
    parser.add_argument("--grace", type=int, default=30, help="oauth-grace: the refresh-token grace period, seconds")
    parser.add_argument("--cli", action="append", default=[], metavar="COMMAND",
                        help='another CLI command for the clients, e.g. --cli "auth whoami" (repeatable)')
    parser.add_argument("--keep", type=Path, default=None, help="keep the homes, outputs and server logs in this directory")
    args = parser.parse_args()
    if not 1 <= args.processes <= 64 or not 10 <= args.duration <= 600 or not 0 <= args.cli_processes <= args.processes:
        parser.error("--processes must be 1-64, --cli-processes 0 to --processes, --duration 10-600 seconds")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    command = this_command() + ("" if args.seed is not None else f" --seed {seed}")
    header("chaos: sessions under signals, server faults and a restart", command)
    load = os.getloadavg()
    print(f"   seed {seed}; {args.processes} processes x {args.duration:g} s per mode; access tokens {ACCESS_LIFETIME:g} s; "
          f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    commands = cli_commands(args.cli)
    print(f"   CLI commands: {', '.join('auth ' + c for c in commands)}; library calls: get_access_token, "
          "obtain_ws_token, BearerAuth GET /api/v1/me and /api/v1/sync/health/")

    # Ctrl-C or SIGTERM to this run: end every process it started (the `finally` below), then exit 130.
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell may start a background job ignoring it
        signal.signal(signum, signal.default_int_handler)
    all_modes = modes(args.grace)
    results = []
    try:
        with contextlib.ExitStack() as stack:
            root = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kitty-chaos-")))
            for index, name in enumerate(args.modes):
                workdir = root / name
                if workdir.exists():
                    raise SystemExit(f"{workdir} exists: give --keep an empty directory")
                run = ModeRun(all_modes[name], args, seed * 10 + index, workdir, commands)
                try:
                    run.run()
                finally:
                    run.stop_everything()
                results.append(run.results())
                print_mode(results[-1])
            print(f"\n== chaos summary: sessions lost/events injected per cause; for signals, (how many hit the process "
                  f"holding the credentials lock); command: {command}")
            print(f"   machine: {machine()}; load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            for line in summary_table(results):
                print(line)
            if args.keep:
                print(f"   outputs kept in {args.keep}")
    except KeyboardInterrupt:
        print("\nchaos: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130
    failed = [f"{r['mode']}: {k}" for r in results for k in FAILING_CHECKS if not r["checks"].get(k)]
    if failed:
        print("chaos: FAILED checks: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
