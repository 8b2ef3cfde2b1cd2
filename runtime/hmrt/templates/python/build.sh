#!/bin/sh
# Builds {{name}}.wasm, a WebAssembly component of the `{{kind}}` world of wit/plugin.wit, from
# app.py with componentize-py. `./build.sh test` runs the unit tests natively; `./build.sh
# bindings` only writes the typed bindings (bindings/wit_world) that hmrt_plugin.py imports.
set -eu
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
what=${1:-build}
case "$what" in
    build | test | bindings) ;;
    *) echo "usage: ./build.sh [build|test|bindings]" >&2; exit 2 ;;
esac

# The tools, pinned in requirements.txt, in a venv of this project (reinstalled when it changes).
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv || {
        echo "cannot create .venv: install Python's venv module (Debian: apt-get install python3-venv)" >&2
        exit 1
    }
fi
if ! cmp -s requirements.txt .venv/requirements.installed; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
    cp requirements.txt .venv/requirements.installed
fi

# Typed bindings of the contract, for hmrt_plugin.py and the tests (componentize-py makes its
# own when it builds the component).
if [ ! -f bindings/.stamp ] || [ wit/plugin.wit -nt bindings/.stamp ] \
    || [ .venv/requirements.installed -nt bindings/.stamp ]; then
    rm -rf bindings
    .venv/bin/componentize-py -d wit -w {{kind}} bindings bindings
    touch bindings/.stamp
fi

case "$what" in
    bindings) exit 0 ;;
    test) exec .venv/bin/python -m unittest -v ;;
esac
.venv/bin/componentize-py -d wit -w {{kind}} componentize app -p . -o {{name}}.wasm
echo "built {{name}}.wasm ($(wc -c < {{name}}.wasm) bytes)"
