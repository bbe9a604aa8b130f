#!/usr/bin/env node
// The compiled ABI and bytecode the Rust side builds its bindings from (`artifacts/*.json`),
// taken from forge's `out/` after `forge build`.
//   node scripts/artifacts.js          rewrite artifacts/ from out/
//   node scripts/artifacts.js --check  fail if artifacts/ differs from out/ (run in CI)
const fs = require("fs");
const path = require("path");

const CONTRACTS = ["CossToken", "CossSale", "TokenLock", "CossDeployment", "TestUsd"];
const root = path.join(__dirname, "..");
const check = process.argv.includes("--check");

function artifact(name) {
  const built = path.join(root, "out", `${name}.sol`, `${name}.json`);
  if (!fs.existsSync(built)) {
    throw new Error(`${built} is missing: run \`forge build\` first`);
  }
  const out = JSON.parse(fs.readFileSync(built, "utf8"));
  return (
    JSON.stringify(
      {
        contractName: name,
        abi: out.abi,
        bytecode: out.bytecode.object,
        deployedBytecode: out.deployedBytecode.object,
      },
      null,
      2,
    ) + "\n"
  );
}

const stale = [];
for (const name of CONTRACTS) {
  const file = path.join(root, "artifacts", `${name}.json`);
  const fresh = artifact(name);
  if (check) {
    const committed = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    if (committed !== fresh) stale.push(path.relative(root, file));
  } else {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, fresh);
  }
}
if (stale.length > 0) {
  process.stderr.write(
    `error: committed artifacts differ from a fresh compile: ${stale.join(", ")}\n` +
      "run `make artifacts` and commit the result\n",
  );
  process.exitCode = 1;
} else if (check) {
  process.stdout.write(`artifacts match a fresh compile (${CONTRACTS.join(", ")})\n`);
}
