"""A real SMTP server on loopback for the tests (aiosmtpd), started by test/support/smtp.ts.

It takes mail over STARTTLS (required) or implicit TLS, requires AUTH with one
user and password, and writes each accepted message, as received, to a folder:
<n>.eml and <n>.json (the envelope). With --fail-first N it answers the first N
messages with a temporary failure (451), as a busy relay does. It prints
"ready" on stdout once it takes connections.
"""

import argparse
import asyncio
import json
import os
import ssl

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, folder, fail_first):
        self.folder = folder
        self.fail_first = fail_first
        self.seen = 0
        self.kept = 0

    async def handle_DATA(self, server, session, envelope):
        self.seen += 1
        if self.seen <= self.fail_first:
            return "451 4.3.0 Busy: try again later"
        self.kept += 1
        base = os.path.join(self.folder, str(self.kept))
        with open(base + ".json.tmp", "w") as meta:
            json.dump({"mailFrom": envelope.mail_from, "rcptTos": envelope.rcpt_tos, "tls": server.transport.get_extra_info("ssl_object") is not None}, meta)
        with open(base + ".eml.tmp", "wb") as message:
            message.write(envelope.original_content)
        os.rename(base + ".eml.tmp", base + ".eml")
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 OK"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return check


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["starttls", "tls"], required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    args = parser.parse_args()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    common = dict(
        hostname="127.0.0.1",
        port=args.port,
        authenticator=authenticator(args.user, args.password),
        auth_required=True,
    )
    if args.mode == "starttls":
        controller = Controller(
            Store(args.folder, args.fail_first),
            tls_context=context,
            require_starttls=True,
            auth_require_tls=True,
            **common,
        )
    else:
        # aiosmtpd counts only STARTTLS as TLS for AUTH; here every byte is over TLS from the start.
        controller = Controller(
            Store(args.folder, args.fail_first), ssl_context=context, auth_require_tls=False, **common
        )
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
