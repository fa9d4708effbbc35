#!/usr/bin/env bash
# Compiles the stand-in contracts (Standins.sol) with solcjs from npm and writes their runtime
# bytecode to standins.json, which the tests read. Run it after editing Standins.sol; the tests
# themselves need no compiler.
set -euo pipefail
cd "$(dirname "$0")"
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
npm install --silent --no-audit --no-fund --prefix "$tools" solc@0.8.26 >/dev/null
node - "$tools" <<'JS'
const path = require("path");
const fs = require("fs");
const solc = require(path.join(process.argv[2], "node_modules", "solc"));
const input = {
  language: "Solidity",
  sources: { "Standins.sol": { content: fs.readFileSync("Standins.sol", "utf8") } },
  settings: { viaIR: true, optimizer: { enabled: true, runs: 200 }, outputSelection: { "*": { "*": ["evm.deployedBytecode.object"] } } },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === "error");
if (errors.length) { console.error(errors.map((e) => e.formattedMessage).join("\n")); process.exit(1); }
const code = {};
for (const [name, c] of Object.entries(out.contracts["Standins.sol"])) code[name] = "0x" + c.evm.deployedBytecode.object;
fs.writeFileSync("standins.json", JSON.stringify(code, null, 2) + "\n");
console.log("wrote standins.json:", Object.keys(code).join(", "));
JS
