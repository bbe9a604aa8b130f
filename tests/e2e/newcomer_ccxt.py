"""A newcomer's day on a running `coss up`, driven like a real user and a real bot would.

Two people sign up, verify their email (from the maildir), log in, turn on TOTP and make API
keys through COSS's own /api/v1; they deposit on the local anvil (ETH, and tUSD minted by the
token's issuer) and wait for the credits. Then an unmodified CCXT `binance` client, pointed at
COSS by changing only its URLs, loads the markets, reads the book, places, cancels and fills
orders, reads balances and trades, and follows the depth stream (ccxt.pro) to a book that
equals the REST snapshot. Finally one of them withdraws ETH to an outside address, and the
coins arrive on chain.

Usage: python newcomer_ccxt.py --url http://127.0.0.1:PORT --data-dir DIR
       [--ca-file CERT.pem]   (an https URL whose certificate that file vouches for: NGINX)
Exit status 0 when every step held; an AssertionError with the step otherwise.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import struct
import sys
import time
import urllib.error
import urllib.request

import ccxt
import ccxt.pro

PASSWORD = "correct horse battery staple"
ETH = 10**18
TUSD = 10**6
# mint(address,uint256): the first four bytes of its keccak-256.
MINT_SELECTOR = "40c10f19"


def step(text):
    print(f"== {text}", flush=True)


def call(base, method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        return error.code, json.loads(text) if text else None


def totp(secret_b32, at=None):
    """RFC 6238: HMAC-SHA1, 30-second steps, 6 digits."""
    padded = secret_b32 + "=" * (-len(secret_b32) % 8)
    key = base64.b32decode(padded.upper())
    counter = int((time.time() if at is None else at) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def wait_for(what, check, timeout=90):
    deadline = time.time() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def verification_token(data_dir, email):
    new = os.path.join(data_dir, "mail", "new")

    def find():
        for name in sorted(os.listdir(new)) if os.path.isdir(new) else []:
            text = open(os.path.join(new, name), encoding="utf-8", errors="replace").read()
            text = text.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
            if f"To: {email}" in text and "verify-email?token=" in text:
                token = ""
                for c in text.split("token=")[1]:
                    if not (c.isascii() and c.isalnum()):
                        break
                    token += c
                return token
        return None

    return wait_for(f"{email}'s verification email", find)


class Newcomer:
    def __init__(self, base, data_dir, email):
        self.base, self.email = base, email
        status, _ = call(base, "POST", "/api/v1/auth/signup", body={"email": email, "password": PASSWORD})
        assert status == 202, f"signup: {status}"
        token = verification_token(data_dir, email)
        status, _ = call(base, "POST", "/api/v1/auth/verify-email", body={"token": token})
        assert status == 200, f"verify: {status}"
        status, login = call(base, "POST", "/api/v1/auth/login", body={"email": email, "password": PASSWORD})
        assert status == 200, f"login: {status} {login}"
        self.access = login["access_token"]
        status, enrolment = call(base, "POST", "/api/v1/auth/2fa/totp", self.access, {"password": PASSWORD})
        assert status in (200, 201), f"totp enrolment: {status} {enrolment}"
        self.seed = enrolment["secret"]
        now = time.time()
        # The confirmation takes the previous step's code and the key the current one: near a
        # step's end the previous one could expire in flight, so start a fresh step.
        if 30 - now % 30 < 3:
            time.sleep(30 - now % 30 + 0.1)
            now = time.time()
        status, confirmed = call(base, "POST", "/api/v1/auth/2fa/totp/confirm", self.access, {"code": totp(self.seed, now - 30)})
        assert status == 200, f"totp confirm: {status} {confirmed}"
        status, key = call(
            base, "POST", "/api/v1/api-keys", self.access,
            {"label": "ccxt bot", "permissions": ["read", "trade"], "totp_code": totp(self.seed, now)},
        )
        assert status == 201, f"api key: {status} {key}"
        self.api_key, self.secret = key["api_key"], key["secret"]
        self.next_code_at = now + 30
        status, address = call(base, "GET", "/api/v1/wallet/deposit-address", self.access)
        assert status == 200, f"deposit address: {status} {address}"
        self.deposit_address = address["address"]

    def fresh_code(self):
        """A TOTP code of a step not used yet (each step works once)."""
        at = max(self.next_code_at, time.time())
        self.next_code_at = at + 30
        return totp(self.seed, at)

    def balance(self, asset):
        _, balances = call(self.base, "GET", "/api/v1/wallet/balances", self.access)
        for b in balances:
            if b["asset"] == asset:
                return b["available"]
        return None


class Chain:
    def __init__(self, data_dir):
        chain = os.path.join(data_dir, "chain")
        self.url = json.load(open(os.path.join(chain, "anvil.json")))["http"]
        self.tusd = json.load(open(os.path.join(chain, "deployment.json")))["tusd"]
        self.dev = self.rpc("eth_accounts", [])[0]

    def rpc(self, method, params):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert "error" not in answer, f"{method}: {answer['error']}"
        return answer["result"]

    def send(self, to, value=0, data="0x"):
        tx = self.rpc("eth_sendTransaction", [{"from": self.dev, "to": to, "value": hex(value), "data": data}])
        receipt = wait_for("a receipt", lambda: self.rpc("eth_getTransactionReceipt", [tx]))
        assert receipt["status"] == "0x1", f"transaction failed: {receipt}"

    def mint_tusd(self, to, amount):
        data = "0x" + MINT_SELECTOR + to[2:].lower().rjust(64, "0") + hex(amount)[2:].rjust(64, "0")
        self.send(self.tusd, data=data)

    def balance(self, address):
        return int(self.rpc("eth_getBalance", [address, "latest"]), 16)


def point_at_coss(exchange, base):
    for name in ("public", "private"):
        exchange.urls["api"][name] = base + "/api/v3"
    ws = base.replace("https://", "wss://").replace("http://", "ws://") + "/ws"
    if isinstance(exchange.urls["api"].get("ws"), dict):
        for name in list(exchange.urls["api"]["ws"]):
            if isinstance(exchange.urls["api"]["ws"][name], str):
                exchange.urls["api"]["ws"][name] = ws
    return exchange


CA_FILE = None


def options():
    # The sync client (requests) reads REQUESTS_CA_BUNDLE only when told to trust the environment.
    extra = {"cafile": CA_FILE, "requests_trust_env": True} if CA_FILE else {}
    return {
        **extra,
        "enableRateLimit": False,
        "options": {
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "defaultType": "spot",
        },
    }


def client(base, person):
    config = options()
    config.update({"apiKey": person.api_key, "secret": person.secret})
    return point_at_coss(ccxt.binance(config), base)


async def follow_depth(base, alice, bob):
    """ccxt.pro keeps a local book from the diff stream; it must equal the REST snapshot."""
    config = options()
    config.update({"apiKey": alice.api_key, "secret": alice.secret})
    pro = point_at_coss(ccxt.pro.binance(config), base)
    trader = client(base, bob)
    try:
        book = await pro.watch_order_book("ETH/TUSD")
        for i in range(12):
            await asyncio.to_thread(trader.create_limit_buy_order, "ETH/TUSD", 0.01, 1900 + i)
            book = await pro.watch_order_book("ETH/TUSD")
        deadline = time.time() + 10
        while True:
            rest = await asyncio.to_thread(trader.fetch_order_book, "ETH/TUSD", 1000)
            local = pro.orderbooks["ETH/TUSD"]
            ours = (list(map(list, local["bids"][:50])), list(map(list, local["asks"][:50])))
            theirs = (rest["bids"][:50], rest["asks"][:50])
            if ours == theirs and len(rest["bids"]) >= 12:
                return len(rest["bids"]), len(rest["asks"])
            assert time.time() < deadline, f"the streamed book never matched the snapshot:\n{ours}\n{theirs}"
            book = await asyncio.wait_for(pro.watch_order_book("ETH/TUSD"), 5)
    finally:
        await pro.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--ca-file", default=None, help="trust this certificate (https through NGINX)")
    parser.add_argument("--tag", default="", help="makes the emails unique, to run again on one server")
    args = parser.parse_args()
    base = args.url.rstrip("/")
    if args.ca_file:
        # urllib and requests (CCXT's sync client) read these; ccxt.pro takes `cafile`.
        global CA_FILE
        CA_FILE = args.ca_file
        os.environ["SSL_CERT_FILE"] = args.ca_file
        os.environ["REQUESTS_CA_BUNDLE"] = args.ca_file

    step("two newcomers sign up, verify, log in, turn on TOTP and make API keys")
    alice = Newcomer(base, args.data_dir, f"alice{args.tag}@example.com")
    bob = Newcomer(base, args.data_dir, f"bob{args.tag}@example.com")

    step("they deposit on the local chain and wait for the credits")
    chain = Chain(args.data_dir)
    chain.send(alice.deposit_address, value=2 * ETH)
    chain.mint_tusd(bob.deposit_address, 10_000 * TUSD)
    wait_for("alice's ETH", lambda: alice.balance("ETH") == "2.000000000000000000")
    wait_for("bob's tUSD", lambda: bob.balance("TUSD") == "10000.000000")

    step("CCXT loads the markets and reads the book")
    a, b = client(base, alice), client(base, bob)
    markets = a.load_markets()
    assert "ETH/TUSD" in markets, sorted(markets)
    market = markets["ETH/TUSD"]
    assert market["spot"] and market["active"], market
    assert float(market["precision"]["price"]) == 0.01, market["precision"]
    assert float(market["precision"]["amount"]) == 0.0001, market["precision"]
    assert market["limits"]["cost"]["min"] == 1.0, market["limits"]
    book = a.fetch_order_book("ETH/TUSD")
    assert book["bids"] == [] and book["asks"] == [], book
    # Trades made before this run (another test on the same server) are not this run's.
    earlier = len(a.fetch_trades("ETH/TUSD"))
    earlier_volume = round(sum(c[5] for c in a.fetch_ohlcv("ETH/TUSD", "1m")), 8)

    step("place, list and cancel orders")
    sell = a.create_limit_sell_order("ETH/TUSD", 0.5, 2000)
    assert sell["status"] == "open" and sell["amount"] == 0.5, sell
    resting = b.create_limit_buy_order("ETH/TUSD", 0.2, 1990)
    open_orders = b.fetch_open_orders("ETH/TUSD")
    assert [o["id"] for o in open_orders] == [resting["id"]], open_orders
    book = b.fetch_order_book("ETH/TUSD")
    assert book["asks"][0][:2] == [2000.0, 0.5] and book["bids"][0][:2] == [1990.0, 0.2], book
    cancelled = b.cancel_order(resting["id"], "ETH/TUSD")
    assert cancelled["status"] == "canceled", cancelled
    assert b.fetch_open_orders("ETH/TUSD") == []

    step("fill: bob buys 0.3 ETH at market from alice's offer")
    bought = b.create_market_buy_order("ETH/TUSD", 0.3)
    assert bought["status"] == "closed" and bought["filled"] == 0.3, bought
    assert bought["average"] == 2000.0 and bought["cost"] == 600.0, bought
    alices = a.fetch_order(sell["id"], "ETH/TUSD")
    assert alices["filled"] == 0.3 and alices["remaining"] == 0.2 and alices["status"] == "open", alices
    mine = a.fetch_my_trades("ETH/TUSD")
    assert len(mine) == 1 and mine[0]["side"] == "sell" and mine[0]["takerOrMaker"] == "maker", mine
    theirs = b.fetch_my_trades("ETH/TUSD")
    assert len(theirs) == 1 and theirs[0]["side"] == "buy" and theirs[0]["price"] == 2000.0, theirs
    public = a.fetch_trades("ETH/TUSD")
    assert len(public) == earlier + 1 and public[-1]["amount"] == 0.3, public

    step("balances add up")
    bb = b.fetch_balance()
    fee = theirs[0]["fee"]["cost"]
    assert theirs[0]["fee"]["currency"] == "ETH", theirs[0]["fee"]
    assert abs(bb["ETH"]["free"] - (0.3 - fee)) < 1e-12, (bb["ETH"], fee)
    assert bb["TUSD"]["free"] == 9400.0, bb["TUSD"]
    ab = a.fetch_balance()
    assert ab["ETH"]["free"] == 1.5 and ab["ETH"]["used"] == 0.2, ab["ETH"]
    assert ab["TUSD"]["free"] == 600.0 - mine[0]["fee"]["cost"], (ab["TUSD"], mine[0]["fee"])

    step("the statement (the history in the database) shows every change")

    def statement_settled():
        _, lines = call(base, "GET", "/api/v1/wallet/statement?asset=TUSD", bob.access)
        return lines if lines and lines[-1]["available"] == "9400.000000" else None

    lines = wait_for("bob's TUSD statement", statement_settled, timeout=20)
    assert lines[0]["available"] == "10000.000000", lines
    status, bad = call(base, "GET", "/api/v1/wallet/statement?asset=NOPE", bob.access)
    assert status == 400 and bad["code"] == "unknown_asset", (status, bad)

    step("the DAO revenue share: its settings, a username, the holder's weeks")
    status, config = call(base, "GET", "/api/v1/dao/config")
    assert status == 200 and config["share"] == "0.5" and config["close"] == "SUN 05:00", config
    assert config["minHolding"] == "1.00000000" and config["nextWeek"], config
    shared = {a["symbol"] for a in config["assets"] if a["feesShared"]}
    assert {"ETH", "COSS", "TUSD"} <= shared, config
    name = f"alice{args.tag}"
    status, named = call(base, "PUT", "/api/v1/dao/username", alice.access, {"username": name})
    assert status == 200 and named["username"] == name, (status, named)
    status, taken = call(base, "PUT", "/api/v1/dao/username", bob.access, {"username": name})
    assert status == 409 and taken["code"] == "dao.username_taken", (status, taken)
    status, bad = call(base, "PUT", "/api/v1/dao/username", bob.access, {"username": "Bob!"})
    assert status == 400 and bad["code"] == "dao.invalid_username", (status, bad)
    status, me = call(base, "GET", "/api/v1/dao/me", alice.access)
    assert status == 200 and me == {"username": name, "weeks": []}, me
    status, _ = call(base, "GET", "/api/v1/dao/me")
    assert status == 401
    status, missing = call(base, "GET", "/api/v1/dao/weeks/2020-W01")
    assert status == 404 and missing["code"] == "dao.unknown_week", (status, missing)
    status, bad = call(base, "GET", "/api/v1/dao/weeks/2026-W99")
    assert status == 400 and bad["code"] == "dao.invalid_week", (status, bad)
    status, bad = call(base, "GET", "/api/v1/dao/me?week=soon", alice.access)
    assert status == 400 and bad["code"] == "dao.invalid_week", (status, bad)
    status, again = call(base, "PUT", "/api/v1/dao/username", alice.access, {"username": name + "x"})
    assert status == 409 and again["code"] == "dao.has_username", (status, again)
    status, me = call(base, "GET", "/api/v1/dao/username", alice.access)
    assert status == 200 and me == {"username": name}, me

    step("candles and tickers")
    candles = a.fetch_ohlcv("ETH/TUSD", "1m")
    volume = round(sum(c[5] for c in candles), 8)
    assert candles[-1][4] == 2000.0 and volume == round(earlier_volume + 0.3, 8), candles
    ticker = a.fetch_ticker("ETH/TUSD")
    assert ticker["last"] == 2000.0 and ticker["ask"] == 2000.0, ticker

    step("ccxt.pro follows the depth stream to the REST book")
    bids, asks = asyncio.run(follow_depth(base, alice, bob))
    print(f"   streamed book equals the snapshot: {bids} bid levels, {asks} ask levels")

    step("bob withdraws 0.1 ETH to an outside address; it arrives on chain")
    outside = "0x00000000000000000000000000000000000000e1"
    before = chain.balance(outside)
    status, withdrawal = call(
        base, "POST", "/api/v1/wallet/withdrawals", bob.access,
        {"asset": "ETH", "address": outside, "amount": "0.1", "code": bob.fresh_code()},
    )
    assert status == 201, f"withdrawal: {status} {withdrawal}"

    def settled():
        _, w = call(base, "GET", f"/api/v1/wallet/withdrawals/{withdrawal['id']}", bob.access)
        return w if w["status"] == "settled" else None

    wait_for("the withdrawal to settle", settled, timeout=120)
    assert chain.balance(outside) - before == ETH // 10, "the coins arrived"
    print("OK: every step held")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        raise
