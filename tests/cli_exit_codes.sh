#!/bin/sh
# The trainers' exit codes: 2 on usage errors (with the usage text), 1 on a corrupt data file
# with one line that names the file.  Usage: cli_exit_codes.sh ANGULAR_TRAIN ANGULAR_COMPARE
train=$1 compare=$2
fail() { echo "FAIL: $*"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# expect_exit CODE WHAT COMMAND...: COMMAND (output in $dir/out.txt) must exit with CODE.
expect_exit() {
  want=$1 what=$2
  shift 2
  "$@" >"$dir/out.txt" 2>&1
  rc=$?
  [ $rc -eq "$want" ] || fail "$what: exit $rc instead of $want: $(head -n 3 "$dir/out.txt")"
}

expect_exit 2 "unknown loss" "$train" --loss nope --out "$dir/x"
grep -q "Usage:" "$dir/out.txt" || fail "no usage text"
expect_exit 2 "missing --out" "$compare" --epochs 1
expect_exit 2 "negative epochs" "$train" --loss arc --epochs -3 --out "$dir/x"
expect_exit 2 "sample rate 0" "$train" --loss arc --sample-rate 0 --out "$dir/x"
grep -q "the sample rate must be in (0, 1], got 0" "$dir/out.txt" || fail "sample rate 0: $(head -n 3 "$dir/out.txt")"
expect_exit 2 "sample rate above 1" "$train" --loss arc --sample-rate 1.5 --out "$dir/x"
# Class sampling is the sharded head's: one process refuses it before reading any data.
expect_exit 1 "sample rate on one process" "$train" --loss arc --sample-rate 0.5 --data "$dir/none" --out "$dir/x"
grep -q "class sampling is the class-sharded head's" "$dir/out.txt" || fail "sample rate on one process: $(cat "$dir/out.txt")"

# torchrun's variables: a malformed one is named; a rank alone ends after --timeout.
expect_exit 1 "malformed RANK" env WORLD_SIZE=2 RANK=x MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 "$train" --loss arc --out "$dir/x"
grep -q "RANK=x is not an integer" "$dir/out.txt" || fail "malformed RANK: $(cat "$dir/out.txt")"
expect_exit 1 "no MASTER_ADDR" env WORLD_SIZE=2 RANK=0 MASTER_PORT=29500 "$train" --loss arc --out "$dir/x"
grep -q "MASTER_ADDR is not" "$dir/out.txt" || fail "no MASTER_ADDR: $(cat "$dir/out.txt")"
port=$((20000 + $$ % 20000))
expect_exit 1 "a rank alone" env WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  "$train" --loss arc --timeout 2 --out "$dir/x"
grep -q "could not meet the others" "$dir/out.txt" || fail "a rank alone: $(cat "$dir/out.txt")"
expect_exit 1 "compare on ranks" env WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
  "$compare" --epochs 1 --out "$dir/x"
grep -q "runs as one process" "$dir/out.txt" || fail "compare on ranks: $(cat "$dir/out.txt")"

printf 'not gzip at all' >"$dir/train-images-idx3-ubyte.gz"
cp "$dir/train-images-idx3-ubyte.gz" "$dir/train-labels-idx1-ubyte.gz"
expect_exit 1 "corrupt data" "$train" --loss arc --data "$dir" --out "$dir/run"
[ "$(wc -l <"$dir/out.txt")" -eq 1 ] || fail "corrupt data: more than one line: $(cat "$dir/out.txt")"
grep -q "train-images-idx3-ubyte.gz" "$dir/out.txt" || fail "the message does not name the file"
echo "exit codes as documented: $(cat "$dir/out.txt")"
