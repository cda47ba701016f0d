#!/bin/sh
# The trainers' exit codes: 2 on usage errors (with the usage text), 1 on a corrupt data file
# with one line that names the file.  Usage: cli_exit_codes.sh ANGULAR_TRAIN ANGULAR_COMPARE
train=$1 compare=$2
fail() { echo "FAIL: $*"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$train" --loss nope --out "$dir/x" >"$dir/usage.txt" 2>&1
[ $? -eq 2 ] || fail "unknown loss: exit $? instead of 2"
grep -q "Usage:" "$dir/usage.txt" || fail "no usage text"
"$compare" --epochs 1 >/dev/null 2>&1
[ $? -eq 2 ] || fail "missing --out: exit $? instead of 2"
"$train" --loss arc --epochs -3 --out "$dir/x" >/dev/null 2>&1
[ $? -eq 2 ] || fail "negative epochs: exit $? instead of 2"

printf 'not gzip at all' >"$dir/train-images-idx3-ubyte.gz"
cp "$dir/train-images-idx3-ubyte.gz" "$dir/train-labels-idx1-ubyte.gz"
"$train" --loss arc --data "$dir" --out "$dir/run" >"$dir/out.txt" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "corrupt data: exit $rc instead of 1"
[ "$(wc -l <"$dir/out.txt")" -eq 1 ] || fail "corrupt data: more than one line: $(cat "$dir/out.txt")"
grep -q "train-images-idx3-ubyte.gz" "$dir/out.txt" || fail "the message does not name the file"
echo "exit codes as documented: $(cat "$dir/out.txt")"
