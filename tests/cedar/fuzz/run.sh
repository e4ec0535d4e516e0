#!/bin/sh
# run.sh FUZZER CORPUS-DIR SEED-DIR SECONDS [EXT]: one bounded libFuzzer run.
# Seeds: the hand-written ones plus, when extracted, a sample of the
# official corpus files ending in .EXT (policies by default). Exit status is the fuzzer's (non-zero on a
# crash, leak or sanitizer report).
set -e
fuzzer=$1 corpus=$2 seeds=$3 secs=$4 ext=${5:-cedar}
mkdir -p "$corpus"
cp "$seeds"/* "$corpus"/
if [ -n "$CEDAR_CORPUS_DIR" ] && [ -d "$CEDAR_CORPUS_DIR" ]; then
  ls "$CEDAR_CORPUS_DIR"/*."$ext" 2>/dev/null | head -300 | while read -r f; do
    cp "$f" "$corpus"/
  done
fi
exec "$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
  -print_final_stats=1 "$corpus"
