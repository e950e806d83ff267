#!/usr/bin/env python3
"""Drives three tessera replicas the way apps and browsers do while scripts/faults.sh breaks things:
browser logins through the password form, code redemptions (each replayed once, to prove it is
single-use), refresh-token rotations, and device flows ending in a device poll. Every request goes to
a replica picked at random, so every step also crosses replicas.

A request that dies with a replica (connection refused or reset, or a 5xx while a part is down) is
retried on another replica, as a client with a retry policy would: a refresh with the same token,
which the server must still accept (`reuseInterval`). Refreshes of one token are spaced by more than
`--reuse-interval`, so each one rotates the token (inside the interval the server hands back the
current token unchanged, as Dex: a lost rotation would go unseen). Afterwards it prints its counts
and exits 1 on any loss:

- a code redeemed twice, a refresh token lost, a token without its custom claim, no rotation at all;
- any 5xx or failed flow once every part is back (the `--calm-after` seconds have passed);
- and it writes the `kid`s of the ID tokens it got to --kids, for the script's key-rotation check.

Standard library only: it runs wherever python3 does.
"""

import argparse
import base64
import html
import http.cookiejar
import json
import random
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

CLAIM = "team"
REDIRECT = "http://127.0.0.1:5555/callback"
CLIENT, SECRET = "fault-app", "fault-app-secret"
RETRY_FOR = 60.0  # seconds a client keeps retrying one step


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.values = {}
        self.kids = set()
        self.codes = {}
        self.problems = []

    def add(self, name, n=1):
        with self.lock:
            self.values[name] = self.values.get(name, 0) + n

    def problem(self, text):
        with self.lock:
            self.problems.append(text)
            print("PROBLEM:", text, file=sys.stderr, flush=True)


class Dead(Exception):
    """The replica did not answer (connection refused or reset, or a timeout)."""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Client:
    def __init__(self, replicas, issuer, counts, calm_at):
        self.replicas = replicas
        self.issuer = issuer.rstrip("/")
        self.counts = counts
        self.calm_at = calm_at
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(self.jar))

    def calm(self):
        return time.monotonic() >= self.calm_at

    def url(self, path_or_url, replica):
        """An issuer URL, an absolute path on its host (`/dex/...`, as tessera's redirects are) or a path
        under the issuer (`/token`), sent to `replica`."""
        issuer_path = urllib.parse.urlparse(self.issuer).path
        if path_or_url.startswith(self.issuer):
            path_or_url = path_or_url[len(self.issuer):]
        elif path_or_url.startswith(issuer_path + "/"):
            path_or_url = path_or_url[len(issuer_path):]
        return replica + path_or_url

    def send(self, method, path, form=None, auth=None):
        """One request to a random replica: (status, headers, body). Raises Dead if nobody answered."""
        replica = random.choice(self.replicas)
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.url(path, replica), data=data, method=method)
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with self.opener.open(request, timeout=20) as response:
                return response.status, response.headers, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode("utf-8", "replace")
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as error:
            raise Dead(str(error)) from error

    def step(self, what, method, path, form=None, auth=None, ok=lambda status: status < 500):
        """`send`, retried on another replica while replicas die or answer 5xx (for up to RETRY_FOR)."""
        deadline = time.monotonic() + RETRY_FOR
        while True:
            calm = self.calm()
            try:
                status, headers, body = self.send(method, path, form, auth)
                if ok(status):
                    return status, headers, body
                failure = f"{what}: {status} {text_of(body)}"
            except Dead as dead:
                failure = f"{what}: no answer ({dead})"
            if calm:
                self.counts.problem(f"after every part was back: {failure}")
            self.counts.add("retries")
            if time.monotonic() > deadline:
                raise Lost(failure)
            time.sleep(0.5)

    def follow(self, what, status, headers, body):
        """Follows redirects inside tessera; returns (status, url-or-None, body) at a page or the app."""
        for _ in range(10):
            location = headers.get("Location") if 300 <= status < 400 else None
            if location is None:
                return status, None, body
            if location.startswith(REDIRECT):
                return status, location, body
            status, headers, body = self.step(what, "GET", location)
        raise Lost(f"{what}: too many redirects")


class Lost(Exception):
    """A flow that could not be completed (tolerated while a part is down, fatal after)."""


def text_of(body):
    """A page's text without its markup (for a short message), or a JSON body as it is."""
    if "<" not in body:
        return body[:200]
    main = body.split("<body", 1)[-1]
    words = re.sub(r"<[^>]*>", " ", main.split("</body>", 1)[0]).split()
    return html.unescape(" ".join(words))[:200]


def claims_of(id_token):
    payload = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def kid_of(id_token):
    header = id_token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))).get("kid")


def check_tokens(client, tokens, what):
    id_token = tokens.get("id_token")
    if not id_token:
        client.counts.problem(f"{what}: no ID token in {tokens}")
        return
    claims = claims_of(id_token)
    client.counts.add("tokens_checked")
    with client.counts.lock:
        client.counts.kids.add(kid_of(id_token))
    if CLAIM not in claims:
        client.counts.problem(f"{what}: a token without its custom claim {CLAIM!r}: {claims}")


def form_fields(page):
    """The first form of a page: its action and its hidden fields."""
    start = page.find("<form")
    action = html.unescape(page[start:].split('action="', 1)[1].split('"', 1)[0])
    hidden = {}
    for tag in page[start:].split("<input")[1:]:
        if 'type="hidden"' in tag:
            name = tag.split('name="', 1)[1].split('"', 1)[0]
            value = tag.split('value="', 1)[1].split('"', 1)[0] if 'value="' in tag else ""
            hidden[html.unescape(name)] = html.unescape(value)
    return action, hidden


def log_in(client, user, start):
    """From `start` (an /auth URL or the device's verify_code redirect) through the password form."""
    status, headers, body = start()
    status, location, body = client.follow("login", status, headers, body)
    if location is None:
        if 'name="password"' not in body:
            raise Lost(f"login: no password form ({status}): {text_of(body)}")
        action, hidden = form_fields(body)
        hidden.update({"login": user, "password": "password"})
        status, headers, body = client.step("password form", "POST", action, hidden)
        status, location, body = client.follow("after the password form", status, headers, body)
    return status, location, body


def code_flow(client, user):
    query = urllib.parse.urlencode({
        "client_id": CLIENT, "redirect_uri": REDIRECT, "response_type": "code",
        "scope": "openid email offline_access", "state": "s", "connector_id": "local",
    })
    _, location, body = log_in(client, user, lambda: client.step("auth", "GET", f"/auth?{query}"))
    if location is None:
        raise Lost(f"login ended on a page: {text_of(body)}")
    code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
    redeem = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    status, _, body = client.step("code redemption", "POST", "/token", redeem, (CLIENT, SECRET))
    if status != 200:
        # The code was spent by a request whose answer died with its replica: the app starts again.
        client.counts.add("codes_lost_with_a_replica")
        raise Lost(f"code redemption: {status} {text_of(body)}")
    with client.counts.lock:
        client.counts.codes[code] = client.counts.codes.get(code, 0) + 1
    client.counts.add("codes_redeemed")
    tokens = json.loads(body)
    check_tokens(client, tokens, "code redemption")
    # Replayed on some replica: a code is single-use, whoever asks.
    status, _, body = client.step("code replay", "POST", "/token", redeem, (CLIENT, SECRET))
    if status == 200:
        client.counts.problem(f"code {code[:8]}… redeemed twice")
        with client.counts.lock:
            client.counts.codes[code] += 1
    client.counts.add("codes_replayed_and_refused")
    return tokens


def refresh(client, refresh_token):
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    status, _, body = client.step("refresh", "POST", "/token", form, (CLIENT, SECRET))
    if status != 200:
        client.counts.problem(f"refresh token lost: {status} {text_of(body)}")
        client.counts.add("refresh_tokens_lost")
        return None
    client.counts.add("refreshes")
    tokens = json.loads(body)
    check_tokens(client, tokens, "refresh")
    if tokens["refresh_token"] != refresh_token:
        client.counts.add("rotations")
    return tokens["refresh_token"]


def device_flow(client, user):
    status, _, body = client.step("device code", "POST", "/device/code",
                                  {"client_id": CLIENT, "client_secret": SECRET, "scope": "openid email"})
    if status != 200:
        raise Lost(f"device code: {status} {text_of(body)}")
    start = json.loads(body)
    _, _, page = log_in(client, user, lambda: client.step(
        "user code", "POST", "/device/auth/verify_code", {"user_code": start["user_code"]}))
    if "device" not in page.lower():
        client.counts.add("device_callbacks_lost")
    interval = start.get("interval", 5)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        time.sleep(interval + 0.5)
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": start["device_code"]}
        status, _, body = client.step("device poll", "POST", "/token", form)
        client.counts.add("device_polls")
        answer = json.loads(body)
        if status == 200:
            client.counts.add("device_flows")
            check_tokens(client, answer, "device poll")
            return
        if answer.get("error") == "slow_down":
            interval += 5
        elif answer.get("error") != "authorization_pending":
            raise Lost(f"device poll: {status} {text_of(body)}")
    raise Lost("device poll: never completed")


def worker(index, args, counts, stop_at, calm_at):
    user = f"user{index}@example.com"
    rng = random.Random(index)
    while time.monotonic() < stop_at:
        client = Client(args.replicas.split(","), args.issuer, counts, calm_at)
        started_calm = client.calm()
        try:
            if rng.random() < 0.2:
                device_flow(client, user)
                continue
            tokens = code_flow(client, user)
            token = tokens.get("refresh_token")
            for _ in range(rng.randint(2, 4)):
                # Past the reuse interval, so the refresh rotates the token.
                time.sleep(args.reuse_interval + 0.5)
                if token is None or time.monotonic() >= stop_at:
                    break
                token = refresh(client, token)
            counts.add("flows")
        except Lost as lost:
            counts.add("flows_lost_to_faults")
            if started_calm:
                counts.problem(f"a flow failed after every part was back: {lost}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", required=True, help="comma-separated issuer URLs of the replicas")
    parser.add_argument("--issuer", required=True, help="the issuer as configured (its URLs are rewritten)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, required=True, help="how long to drive")
    parser.add_argument("--calm-after", type=float, required=True, help="seconds until every part is back")
    parser.add_argument("--kids", required=True, help="file to write the ID tokens' kids to")
    parser.add_argument("--reuse-interval", type=float, required=True,
                        help="the servers' expiry.refreshTokens.reuseInterval, in seconds")
    args = parser.parse_args()
    counts = Counts()
    began = time.monotonic()
    stop_at, calm_at = began + args.seconds, began + args.calm_after
    threads = [threading.Thread(target=worker, args=(i, args, counts, stop_at, calm_at), daemon=True)
               for i in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.seconds + RETRY_FOR * 3)
    twice = sum(1 for n in counts.codes.values() if n > 1)
    with open(args.kids, "w") as out:
        out.write("\n".join(sorted(k for k in counts.kids if k)) + "\n")
    print("fault driver counts:")
    for name, value in sorted(counts.values.items()):
        print(f"  {name}: {value}")
    print(f"  codes_redeemed_twice: {twice}")
    print(f"  signing_kids_seen: {len(counts.kids)}")
    print(f"  problems: {len(counts.problems)}")
    alive = [t for t in threads if t.is_alive()]
    if alive:
        counts.problem(f"{len(alive)} workers never finished")
    if counts.values.get("flows", 0) == 0:
        counts.problem("no flow completed at all")
    if counts.values.get("rotations", 0) == 0:
        counts.problem("no refresh rotated its token: a lost rotation would not have been seen")
    if twice or counts.problems:
        for problem in counts.problems[:20]:
            print("  -", problem)
        sys.exit(1)


if __name__ == "__main__":
    main()
