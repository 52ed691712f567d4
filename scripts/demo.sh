#!/usr/bin/env bash
# The main job on the bundled seed tenant: what would change on node slave2 (dry run), why the
# profile's rules never take effect, and the connectivity matrix from a real kernel beside the
# oracle's verdicts. Needs root for the lab (it builds and removes its own network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release -q -p cli
brindle=target/release/brindle
seed=examples/seed-tenant.yaml

echo "== brindle lint: rules that can never take effect"
"$brindle" lint "$seed" || true
echo
echo "== brindle diff --node slave2: what applying would change (dry run, nothing is written)"
"$brindle" diff "$seed" --node slave2 --current examples/empty-node.save || true
echo
echo "== brindle explain: why frontend1 reaches the database on tcp/3306"
"$brindle" explain "$seed" --from slave1-frontend1 --to slave2-database --protocol tcp --port 3306
echo
echo "== brindle lab: real kernel verdicts beside the oracle"
"$brindle" lab "$seed" --probes examples/seed-probes.yaml
