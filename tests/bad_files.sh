#!/bin/sh
# angular-train on hostile files made here with printf, head, gzip and dd (independently of
# the fuzzers' corpus): for each reader — Fashion-MNIST's gzip IDX, CIFAR-10/100's records,
# the checkpoint and metrics.csv that --resume reads — a truncated file, a bit-flipped one and
# one whose header claims more than it holds must end with exit status 1 and one line naming
# the file.  Usage: bad_files.sh ANGULAR_TRAIN
train=$1
fail() { echo "FAIL: $*"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# be32 N: N as 4 big-endian bytes.
be32() {
  for shift in 24 16 8 0; do printf "\\$(printf %03o $((($1 >> shift) & 255)))"; done
}
# flip_bit FILE OFFSET BIT: flips one bit in place.
flip_bit() {
  byte=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "\\$(printf %03o $((byte ^ (1 << $3))))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
size() { wc -c <"$1" | tr -d ' '; }
# truncate_to FILE BYTES
truncate_to() { head -c "$2" "$1" >"$1.cut" && mv "$1.cut" "$1"; }

# expect_rejected WHAT FILE-NAME ARGS...: angular-train ARGS exits 1 with one line naming FILE-NAME.
expect_rejected() {
  what=$1 name=$2
  shift 2
  "$train" "$@" >"$dir/out.txt" 2>&1
  rc=$?
  [ $rc -eq 1 ] || fail "$what: exit $rc instead of 1: $(head -n 3 "$dir/out.txt")"
  [ "$(wc -l <"$dir/out.txt")" -eq 1 ] || fail "$what: not one line: $(cat "$dir/out.txt")"
  grep -q "$name" "$dir/out.txt" || fail "$what: the message does not name $name: $(cat "$dir/out.txt")"
  echo "$what: $(cat "$dir/out.txt")"
}

# Fashion-MNIST, 32 images of random pixels, labels 0–9.
good=$dir/fmnist
mkdir -p "$good"
for split in train t10k; do
  { printf '\0\0\10\3'; be32 32; be32 28; be32 28; head -c $((32 * 784)) /dev/urandom; } |
    gzip -c >"$good/$split-images-idx3-ubyte.gz"
  { printf '\0\0\10\1'; be32 32; for i in 0 1 2; do printf '\0\1\2\3\4\5\6\7\10\11'; done; printf '\0\1'; } |
    gzip -c >"$good/$split-labels-idx1-ubyte.gz"
done
run="--loss arc --epochs 2 --batch-size 16 --threads 1"
images=train-images-idx3-ubyte.gz
fresh() { rm -rf "$dir/bad" && cp -r "$good" "$dir/bad"; }

fresh; truncate_to "$dir/bad/$images" $(($(size "$dir/bad/$images") - 9))
expect_rejected "IDX truncated" "$images" $run --data "$dir/bad" --out "$dir/run"
fresh; flip_bit "$dir/bad/$images" $(($(size "$dir/bad/$images") / 2)) 3
expect_rejected "IDX bit-flipped" "$images" $run --data "$dir/bad" --out "$dir/run"
fresh; { printf '\0\0\10\3'; be32 2147483647; be32 28; be32 28; head -c $((32 * 784)) /dev/zero; } |
  gzip -c >"$dir/bad/$images"
expect_rejected "IDX header of 2^31 - 1 images" "$images" $run --data "$dir/bad" --out "$dir/run"

# CIFAR: 2 records per file, all of class 0 (CIFAR has no header: the record layout is all
# there is, so the third case is a file one byte longer than whole records).
for layout in "cifar10 1 data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin" \
              "cifar100 2 train.bin test.bin"; do
  set -- $layout
  dataset=$1 labels=$2
  shift 2
  files=$*
  mkdir -p "$dir/$dataset"
  for f in $files; do head -c $((2 * (labels + 3072))) /dev/zero >"$dir/$dataset/$f"; done
  last=$(echo "$files" | tr ' ' '\n' | tail -n 1)
  cifar_fresh() { rm -rf "$dir/bad" && cp -r "$dir/$dataset" "$dir/bad"; }
  cifar_fresh; truncate_to "$dir/bad/$last" $((2 * (labels + 3072) - 100))
  expect_rejected "$dataset truncated" "$last" $run --dataset "$dataset" --data "$dir/bad" --out "$dir/run"
  cifar_fresh; flip_bit "$dir/bad/$last" $((labels + 3072)) 7  # the second record's first label byte
  expect_rejected "$dataset label bit-flipped" "$last" $run --dataset "$dataset" --data "$dir/bad" --out "$dir/run"
  cifar_fresh; printf '\0' >>"$dir/bad/$last"
  expect_rejected "$dataset one byte too many" "$last" $run --dataset "$dataset" --data "$dir/bad" --out "$dir/run"
done

# The checkpoint and metrics.csv after one of two epochs, damaged, then --resume.
"$train" $run --data "$good" --stop-after 1 --out "$dir/run" >"$dir/out.txt" 2>&1 || fail "the good run: $(cat "$dir/out.txt")"
cp "$dir/run/checkpoint.pt" "$dir/checkpoint.pt" && cp "$dir/run/metrics.csv" "$dir/metrics.csv"
resume() { expect_rejected "$1" "$2" $run --data "$good" --resume --out "$dir/run"; cp "$dir/checkpoint.pt" "$dir/metrics.csv" "$dir/run/"; }
truncate_to "$dir/run/checkpoint.pt" $(($(size "$dir/checkpoint.pt") - 1000))
resume "checkpoint truncated" checkpoint.pt
flip_bit "$dir/run/checkpoint.pt" $(($(size "$dir/checkpoint.pt") / 2)) 0
resume "checkpoint bit-flipped" checkpoint.pt
printf '\377' | dd of="$dir/run/checkpoint.pt" bs=1 seek=12 conv=notrunc 2>/dev/null  # length's 5th byte: +1 TiB
resume "checkpoint header of 1 TiB more" checkpoint.pt
head -n 1 "$dir/metrics.csv" >"$dir/run/metrics.csv"
resume "metrics.csv truncated" metrics.csv
sed 's/^1,/7,/' "$dir/metrics.csv" >"$dir/run/metrics.csv"
resume "metrics.csv epoch bit-flipped" metrics.csv
"$train" $run --data "$good" --resume --out "$dir/run" >"$dir/out.txt" 2>&1 || fail "the undamaged resume: $(cat "$dir/out.txt")"
echo "every damaged file rejected in one line; the undamaged run resumes"
