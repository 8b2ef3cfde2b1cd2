#!/bin/sh
# Builds {{name}}.wasm (a WebAssembly component); `./build.sh test` runs the unit tests.
set -eu
cd "$(dirname "$0")"
if [ "${1:-}" = test ]; then
    exec cargo test
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "the wasm32-wasip2 target is missing: run \`rustup target add wasm32-wasip2\`" >&2
    exit 1
fi
cargo build --release --target wasm32-wasip2
# A shared CARGO_TARGET_DIR (several plugins, one build of their dependencies) is honoured.
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{name_snake}}.wasm" {{name}}.wasm
echo "built {{name}}.wasm ($(wc -c < {{name}}.wasm) bytes)"
