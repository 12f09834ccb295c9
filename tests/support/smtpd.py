"""A scriptable SMTP server for canvass's integration tests (driven by tests/support/smtpd.rs).

Postfix's smtp-sink covers plain SMTP; this server covers what it cannot: STARTTLS and implicit
TLS with a private CA, AUTH PLAIN and LOGIN, refusals scripted per command and per recipient,
slow answers, and servers that misbehave (an endless or silent greeting, a QUIT never answered,
a connection dropped after the final dot). Built on aiosmtpd (Debian's python3-aiosmtpd 1.4.3)
and the standard library; run it with Debian's /usr/bin/python3:

    /usr/bin/python3 tests/support/smtpd.py --config FILE.json [--stop-on-stdin-eof]
    /usr/bin/python3 tests/support/smtpd.py --make-certs DIR

With --config it prints "READY <port>" once listening and runs until SIGTERM or SIGINT (or, with
--stop-on-stdin-eof, until its standard input closes: the test that started it has gone).
The configuration, a JSON object (unknown keys are refused, to catch typos):

    host, port          where to listen (port 0: any free port, which READY names)
    tls                 "none" (default), "starttls" (offered, and required before AUTH and
                        MAIL) or "implicit" (TLS from the first byte); cert and key are the
                        server's PEM files
    offer_starttls      false: with tls "starttls", do not offer STARTTLS at all (the command
                        gets "454 TLS not available"; AUTH, if set, is offered in the clear)
    auth                {"user": ..., "password": ...}: AUTH PLAIN and LOGIN are offered (or
                        only those in "mechanisms", e.g. ["LOGIN"]) and MAIL without AUTH is
                        refused with 530; a wrong password gets "535 5.7.8 Authentication
                        credentials invalid". Without it no AUTH is offered.
    auth_required       false: with auth, MAIL without AUTH is taken too, as a server takes
                        mail for its own domains from anyone (default: true)
    replies             scripted refusals, each {"command": EHLO|AUTH|MAIL|RCPT|DATA|DATA_END,
                        "reply": "550 5.7.1 ...", "match": substring, "times": N}. DATA is the
                        answer to the DATA command, DATA_END the answer after the final dot.
                        "match" is looked for in the EHLO name, the AUTH mechanism, the MAIL
                        sender, the RCPT recipient, or (DATA, DATA_END) any of the message's
                        recipients. "times" applies the refusal to the first N matching commands
                        only. The first refusal in the list that applies is used.
    delay_ms            {"MAIL": 100, ...}: wait this long before handling these commands
                        (EHLO, HELO, STARTTLS, AUTH, MAIL, RCPT, DATA, RSET, NOOP, QUIT; and
                        DATA_END: before answering the final dot)
    greeting            "endless": "220-" then x's without end, as fast as the client reads;
                        "silent": no greeting at all
    quit                "hang": never answer QUIT, and keep the connection open
    drop_after_data     true: close the connection after the final dot without answering
    pipelining          true: offer PIPELINING (RFC 2920); commands are answered in order as
                        ever, and each "mail" event says whether the client had sent more
                        after MAIL before its answer ("pipelined")
    log                 a file of JSON lines, one per event, each with "event" and "t"
                        (time.time()): connect (peer), mail (from, reply), rcpt (to, reply),
                        refused (command, arg, reply: scripted refusals, 535 for a wrong
                        password, 530 for MAIL/RCPT/DATA without AUTH), dropped (from, to), and
                        accepted (from, to, data_len, auth_user, tls, file), which is written
                        before the 250 is sent: the log holds exactly the messages accepted
    messages            a folder: each accepted message is written there whole as N.eml
"""

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from aiosmtpd.controller import UnthreadedController
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword

KEYS = {
    "host", "port", "tls", "cert", "key", "offer_starttls", "auth", "auth_required", "replies",
    "delay_ms",
    "greeting", "quit", "drop_after_data", "pipelining", "log", "messages",
}
SCRIPTED_COMMANDS = {"EHLO", "AUTH", "MAIL", "RCPT", "DATA", "DATA_END"}
DELAYABLE_COMMANDS = SCRIPTED_COMMANDS | {"HELO", "STARTTLS", "RSET", "NOOP", "QUIT"}
INVALID_CREDENTIALS = "535 5.7.8 Authentication credentials invalid"  # aiosmtpd's words
AUTH_REQUIRED = "530 5.7.0 Authentication required"  # likewise


class Script:
    """What the test asked for, shared by every connection (all run on one event loop)."""

    def __init__(self, config):
        unknown = set(config) - KEYS
        if unknown:
            raise ValueError(f"unknown configuration keys: {sorted(unknown)}")
        self.tls = config.get("tls", "none")
        if self.tls not in ("none", "starttls", "implicit"):
            raise ValueError(f"tls must be none, starttls or implicit, not {self.tls!r}")
        self.offer_starttls = config.get("offer_starttls", True)
        self.auth = config.get("auth")
        self.mechanisms = set()
        if self.auth:
            unknown = set(self.auth) - {"user", "password", "mechanisms"}
            if unknown:
                raise ValueError(f"auth: unknown keys {sorted(unknown)}")
            self.mechanisms = set(self.auth.get("mechanisms", ["PLAIN", "LOGIN"]))
            if not self.mechanisms or self.mechanisms - {"PLAIN", "LOGIN"}:
                raise ValueError("auth: mechanisms are PLAIN and/or LOGIN")
        self.auth_required = bool(self.auth) and config.get("auth_required", True)
        self.faults = [Fault(spec) for spec in config.get("replies", [])]
        delays = config.get("delay_ms", {})
        self.delays = {command.upper(): ms / 1000 for command, ms in delays.items()}
        unknown = set(self.delays) - DELAYABLE_COMMANDS
        if unknown:
            raise ValueError(f"delay_ms: cannot delay {sorted(unknown)}")
        self.greeting = config.get("greeting")
        if self.greeting not in (None, "normal", "endless", "silent"):
            raise ValueError(f"greeting must be endless or silent, not {self.greeting!r}")
        self.quit = config.get("quit")
        if self.quit not in (None, "normal", "hang"):
            raise ValueError(f"quit must be hang, not {self.quit!r}")
        self.drop_after_data = config.get("drop_after_data", False)
        self.pipelining = config.get("pipelining", False)
        self.messages = Path(config["messages"]) if config.get("messages") else None
        if self.messages:
            self.messages.mkdir(parents=True, exist_ok=True)
        self.accepted = 0
        self._log = open(config["log"], "a", encoding="utf-8") if config.get("log") else None

    def log(self, event, **fields):
        if self._log:
            self._log.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
            self._log.flush()

    def refusal(self, command, *args):
        """The scripted reply to this command, if one applies now (and counts it)."""
        for fault in self.faults:
            if fault.applies(command, args):
                return fault.reply
        return None

    async def pause(self, command):
        if command in self.delays:
            await asyncio.sleep(self.delays[command])


class Fault:
    def __init__(self, spec):
        self.command = spec["command"].upper()
        if self.command not in SCRIPTED_COMMANDS:
            raise ValueError(f"replies: cannot script {self.command}")
        self.reply = spec["reply"]
        self.match = spec.get("match")
        self.times_left = spec.get("times")

    def applies(self, command, args):
        if command != self.command:
            return False
        if self.match is not None and not any(self.match in arg for arg in args):
            return False
        if self.times_left is not None:
            if self.times_left <= 0:
                return False
            self.times_left -= 1
        return True


class Handler:
    """aiosmtpd's hooks, called once aiosmtpd has checked a command's syntax, order and AUTH."""

    def __init__(self, script):
        self.script = script

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        reply = self.script.refusal("EHLO", hostname)
        if reply:
            self.script.log("refused", command="EHLO", arg=hostname, reply=reply)
            return [reply]
        session.host_name = hostname
        if not self.script.auth:
            responses = [line for line in responses if not line.startswith("250-AUTH")]
        if self.script.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_AUTH(self, server, session, envelope, args):
        reply = self.script.refusal("AUTH", args[0])
        if reply:
            self.script.log("refused", command="AUTH", arg=args[0], reply=reply)
            return reply
        return MISSING  # aiosmtpd goes on to check the credentials with authenticate()

    def authenticate(self, server, session, envelope, mechanism, credentials):
        expected = LoginPassword(
            self.script.auth["user"].encode(), self.script.auth["password"].encode()
        )
        if credentials == expected:
            return AuthResult(success=True, auth_data=credentials)
        self.script.log("refused", command="AUTH", arg=mechanism, reply=INVALID_CREDENTIALS)
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8

    async def handle_MAIL(self, server, session, envelope, address, options):
        reply = self.script.refusal("MAIL", address)
        if reply:
            self.script.log("refused", command="MAIL", arg=address, reply=reply)
        else:
            envelope.mail_from = address
            envelope.mail_options.extend(options)
            reply = "250 2.1.0 OK"
        # What the client wrote after MAIL and before this answer, if anything, waits unread.
        pipelined = bool(server._reader._buffer)
        self.script.log("mail", **{"from": address, "reply": reply, "pipelined": pipelined})
        return reply

    async def handle_RCPT(self, server, session, envelope, address, options):
        reply = self.script.refusal("RCPT", address)
        if reply:
            self.script.log("refused", command="RCPT", arg=address, reply=reply)
        else:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
            reply = "250 2.1.5 OK"
        self.script.log("rcpt", to=address, reply=reply)
        return reply

    async def handle_DATA(self, server, session, envelope):
        """After the final dot."""
        script = self.script
        await script.pause("DATA_END")
        if script.drop_after_data:
            script.log("dropped", **{"from": envelope.mail_from, "to": envelope.rcpt_tos})
            server.transport.close()
            await asyncio.Future()  # cancelled once the connection is gone
        reply = script.refusal("DATA_END", *envelope.rcpt_tos)
        if reply:
            script.log("refused", command="DATA_END", arg=" ".join(envelope.rcpt_tos), reply=reply)
            return reply
        script.accepted += 1
        name = f"{script.accepted}.eml"
        if script.messages:
            (script.messages / name).write_bytes(envelope.original_content)
        script.log(
            "accepted",
            **{"from": envelope.mail_from},
            to=envelope.rcpt_tos,
            data_len=len(envelope.original_content),
            auth_user=session.auth_data.login.decode() if session.authenticated else None,
            tls=server.transport.get_extra_info("ssl_object") is not None,
            file=name,
        )
        return f"250 2.0.0 OK queued as {script.accepted}"


class ScriptedSMTP(SMTP):
    """aiosmtpd's server, with what its hooks cannot do: greetings, DATA, QUIT and delays."""

    def __init__(self, handler, script, **kwargs):
        super().__init__(handler, **kwargs)
        self.script = script
        for command, seconds in script.delays.items():
            if command in self._smtp_methods:
                self._smtp_methods[command] = delayed(self._smtp_methods[command], seconds)

    def connection_made(self, transport):
        if self._original_transport is None:  # not the second call, after STARTTLS
            peer = transport.get_extra_info("peername")
            self.script.log("connect", peer=f"{peer[0]}:{peer[1]}")
        super().connection_made(transport)

    async def _handle_client(self):
        if self.script.greeting == "silent":
            await asyncio.Future()  # cancelled once the client goes
        elif self.script.greeting == "endless":
            chunk = b"x" * 65536
            try:
                self._writer.write(b"220-")
                while not self._writer.is_closing():
                    self._writer.write(chunk)
                    await self._writer.drain()  # as fast as the client reads, no faster
            except ConnectionError:
                self._writer.close()
        else:
            await super()._handle_client()

    async def check_auth_needed(self, caller_method):
        needed = await super().check_auth_needed(caller_method)  # answers 530 if needed
        if needed:
            self.script.log("refused", command=caller_method, arg=None, reply=AUTH_REQUIRED)
        return needed

    async def smtp_DATA(self, arg):
        ready = (
            self.session.host_name
            and not (self._auth_required and not self.session.authenticated)
            and self.envelope.rcpt_tos
            and not arg
        )
        if ready:
            reply = self.script.refusal("DATA", *self.envelope.rcpt_tos)
            if reply:
                self.script.log(
                    "refused", command="DATA", arg=" ".join(self.envelope.rcpt_tos), reply=reply
                )
                await self.push(reply)
                return
        await super().smtp_DATA(arg)

    async def smtp_QUIT(self, arg):
        if self.script.quit == "hang":
            await asyncio.Future()  # cancelled once the client goes
        await super().smtp_QUIT(arg)


def delayed(method, seconds):
    async def slow(arg):
        await asyncio.sleep(seconds)
        await method(arg)

    return slow


class ScriptedController(UnthreadedController):
    def __init__(self, handler, script, **kwargs):
        self.script = script
        super().__init__(handler, **kwargs)

    def factory(self):
        return ScriptedSMTP(self.handler, self.script, **self.SMTP_kwargs)


def serve(config, stop_on_stdin_eof):
    script = Script(config)
    handler = Handler(script)
    tls_context = None
    if script.tls != "none":
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(config["cert"], config["key"])
    starttls = script.tls == "starttls" and script.offer_starttls
    loop = asyncio.new_event_loop()
    controller = ScriptedController(
        handler,
        script,
        hostname=config.get("host", "127.0.0.1"),
        port=config.get("port", 0),
        loop=loop,
        ssl_context=tls_context if script.tls == "implicit" else None,
        server_hostname="localhost",
        tls_context=tls_context if starttls else None,
        require_starttls=starttls,
        auth_required=script.auth_required,
        # aiosmtpd counts only STARTTLS as TLS: with implicit TLS, or STARTTLS deliberately not
        # offered, it would otherwise never offer AUTH.
        auth_require_tls=starttls,
        authenticator=handler.authenticate if script.auth else None,
        auth_exclude_mechanism={"PLAIN", "LOGIN"} - script.mechanisms if script.auth else None,
    )
    controller.begin()
    port = controller.server.sockets[0].getsockname()[1]
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, loop.stop)
    if stop_on_stdin_eof:
        stdin = sys.stdin.fileno()

        def read_stdin():
            if not os.read(stdin, 4096):
                loop.stop()

        loop.add_reader(stdin, read_stdin)
    print(f"READY {port}", flush=True)
    try:
        loop.run_forever()
    finally:
        controller.server.close()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()


OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def make_certs(directory):
    """A private CA (ca.pem), a server certificate it signs for localhost and 127.0.0.1
    (server.pem, server.key), and an unrelated CA (other-ca.pem): X.509 v3, P-256, SHA-256."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    def openssl(*args):
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        config = work / "openssl.cnf"
        config.write_text(OPENSSL_CONFIG)

        def new_key(path):
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", path)

        def new_ca(name, key, cert):
            new_key(key)
            openssl("req", "-new", "-x509", "-config", config, "-extensions", "ca", "-key", key,
                    "-subj", f"/CN={name}", "-days", "3650", "-sha256", "-out", cert)

        new_ca("canvass test CA", work / "ca.key", out / "ca.pem")
        new_key(out / "server.key")
        openssl("req", "-new", "-config", config, "-key", out / "server.key",
                "-subj", "/CN=localhost", "-out", work / "server.csr")
        openssl("x509", "-req", "-in", work / "server.csr", "-CA", out / "ca.pem",
                "-CAkey", work / "ca.key", "-set_serial", "0x" + secrets.token_hex(16),
                "-days", "3650", "-sha256", "-extfile", config, "-extensions", "server",
                "-out", out / "server.pem")
        new_ca("canvass untrusted test CA", work / "other-ca.key", out / "other-ca.pem")
    openssl("verify", "-CAfile", out / "ca.pem", out / "server.pem")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--config", help="serve as this JSON file says")
    action.add_argument("--make-certs", metavar="DIR", help="write test certificates to DIR")
    parser.add_argument("--stop-on-stdin-eof", action="store_true",
                        help="stop when standard input closes")
    args = parser.parse_args()
    if args.make_certs:
        try:
            make_certs(args.make_certs)
        except subprocess.CalledProcessError as error:
            sys.exit(f"{' '.join(error.cmd)} failed: {error.stderr.decode(errors='replace')}")
        return
    # aiosmtpd warns of its own deprecations on every login, and of AUTH without TLS, which
    # tests ask for; its errors still show.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
    with open(args.config, encoding="utf-8") as file:
        config = json.load(file)
    try:
        serve(config, args.stop_on_stdin_eof)
    except (ValueError, KeyError) as error:
        sys.exit(f"smtpd.py: bad configuration: {error}")


if __name__ == "__main__":
    main()
