#!/bin/sh
# Builds {{name}}.wasm, a WebAssembly component of the `{{kind}}` world of wit/plugin.wit, from
# app.js with jco (QuickJS backend). `./build.sh test` runs the unit tests (app.test.js) natively
# with node; `./build.sh types` only writes TypeScript declarations of the contract to types/
# (for editors).
set -eu
cd "$(dirname "$0")"
what=${1:-build}
case "$what" in
    build | test | types) ;;
    *) echo "usage: ./build.sh [build|test|types]" >&2; exit 2 ;;
esac
if [ "$what" = test ]; then
    exec node --test app.test.js
fi

# The tools, pinned in package.json (reinstalled when it changes).
if [ ! -d node_modules ] || [ package.json -nt node_modules/.installed ]; then
    npm install --no-audit --no-fund
    touch node_modules/.installed
fi
jco=node_modules/.bin/jco

# Declarations of the contract's interfaces, for editor help (the build does not need them).
if [ ! -f types/{{kind}}.d.ts ] || [ wit/plugin.wit -nt types/{{kind}}.d.ts ]; then
    rm -rf types
    "$jco" types wit -n {{kind}} -o types -q
fi
[ "$what" = types ] && exit 0

# QuickJS: a component of about 1.6 MB that wasmtime compiles in a few seconds (StarlingMonkey,
# jco's default, makes 12 MB). Synchronous exports: hmrt does not speak component-model async.
"$jco" componentize app.js -w wit -n {{kind}} --backend quickjs --backend-qjs-disable-async \
    -o {{name}}.wasm
echo "built {{name}}.wasm ($(wc -c < {{name}}.wasm) bytes)"
