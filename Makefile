# Everything a developer runs often. `make run` and `make test` are the README's quick start.
CARGO ?= cargo
DATA_DIR ?= $(HOME)/.local/share/coss

.PHONY: run test lint unit contracts artifacts bench bench-web fmt openapi web web-test

## Runs the whole platform on its embedded defaults (data in $(DATA_DIR)), with the web app
## at http://127.0.0.1:8080/.
run: contracts/node_modules/.package-lock.json web
	$(CARGO) run --release -p coss -- up --data-dir $(DATA_DIR) --web-dir web/dist

## Runs every check CI runs: formatting, lints, then every test (Rust, Solidity, the web app's
## own unit tests, and the browser journey among the Rust integration tests).
test: lint contracts web-test unit

## The web app: its pinned packages, a type check and the production build in web/dist.
web: web/node_modules/.package-lock.json
	cd web && npm run build

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund

## The web app's unit tests (Vitest): decimals, the order book, the Merkle check.
web-test: web
	cd web && npm test

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: contracts/node_modules/.package-lock.json tests/e2e/.venv/ok tests/fuzz/.venv/ok
	$(CARGO) nextest run --workspace --no-fail-fast
	$(CARGO) test --workspace --doc

## The end-to-end test's Python side: an unmodified CCXT (pinned with its dependencies).
tests/e2e/.venv/ok: tests/e2e/requirements.txt
	python3 -m venv tests/e2e/.venv
	tests/e2e/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
	touch $@

## The schema-driven fuzzer run against both OpenAPI documents (pinned with its dependencies).
tests/fuzz/.venv/ok: tests/fuzz/requirements.txt
	python3 -m venv tests/fuzz/.venv
	tests/fuzz/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/fuzz/requirements.txt
	touch $@

## The Solidity contracts: the offline toolchain comes from pinned npm packages.
contracts/node_modules/.package-lock.json: contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund

## Tests with a gas report, then checks that the committed ABI/bytecode (contracts/artifacts,
## which the Rust bindings are built from) match this fresh compile.
contracts: contracts/node_modules/.package-lock.json
	cd contracts && node_modules/.bin/forge test --gas-report
	cd contracts && node scripts/artifacts.js --check

## Rewrites contracts/artifacts from a fresh compile (after changing a contract).
artifacts: contracts/node_modules/.package-lock.json
	cd contracts && node_modules/.bin/forge build
	cd contracts && node scripts/artifacts.js

## The engine benchmark with the durable journal (figures, not assertions).
bench:
	rm -rf target/bench-data
	$(CARGO) run --release -p coss -- bench engine --durable --data-dir target/bench-data

fmt:
	$(CARGO) fmt --all

## The web app's figures (first-view JavaScript, time to interactive, order-book frame times
## under ~1,000 depth updates/s) against a release `coss up` it starts itself.
bench-web: web contracts/node_modules/.package-lock.json
	$(CARGO) build --release -p coss
	node web/tests/browser/bench.mjs --coss target/release/coss

## Rewrites docs/openapi/*.json from the code (a test fails when they drift).
openapi:
	COSS_WRITE_OPENAPI=1 $(CARGO) nextest run -p coss-server the_committed_openapi_documents_match_the_code
