#!/usr/bin/env bash
# Records real `lhp` conversations through the harness's recording proxy and writes them as
# vectors (both directions, with the read sizes as the kernel delivered them) to
# conformance/recorded/lhp.json. Run from the repository root after
# `cargo build --release -p lhp -p lhp-conformance`.
set -euo pipefail
bin=target/release
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

mkdir "$tmp/root"
"$bin/lhp" serve --root "$tmp/root" --addr 127.0.0.1:0 --allow-exec seq > "$tmp/serve.out" &
until head -n1 "$tmp/serve.out" 2>/dev/null | grep -q listening; do sleep 0.05; done
server=$(head -n1 "$tmp/serve.out" | sed 's/^listening on //')

"$bin/lhp-conformance" record --listen 127.0.0.1:0 --upstream "$server" \
    --out conformance/recorded/lhp.json --connections 4 > "$tmp/rec.out" &
rec=$!
until head -n1 "$tmp/rec.out" 2>/dev/null | grep -q listening; do sleep 0.05; done
proxy=$(head -n1 "$tmp/rec.out" | sed 's/^listening on //')

python3 -c 'import sys; sys.stdout.buffer.write(b"".join(b"line %d of a recorded upload\n" % i for i in range(6000)))' > "$tmp/up.txt"
"$bin/lhp" put "$tmp/up.txt" --as recorded.txt --addr "$proxy"
"$bin/lhp" ls --addr "$proxy"
"$bin/lhp" get recorded.txt -o "$tmp/down.txt" --addr "$proxy"
"$bin/lhp" exec --addr "$proxy" -- seq 1 20000 > /dev/null
cmp "$tmp/up.txt" "$tmp/down.txt"
wait "$rec"
echo "wrote conformance/recorded/lhp.json"
