#!/usr/bin/env bash
# Fetches the browser packages canvass uses from the npm registry, checks each tarball against the
# integrity pinned here (the registry's own sha512), and unpacks the one file needed:
#   htmx 2.x     -> templates/console/vendor/htmx.min.js (served by the console; committed)
#   htmx-ext-sse -> templates/console/vendor/sse.js      (its server-sent events; committed)
#   axe-core 4.x -> target/vendor/axe.min.js            (the accessibility checks of the tests)
# Usage: scripts/vendor.sh [htmx|sse|axe]...   (no argument: all)
set -euo pipefail
cd "$(dirname "$0")/.."

fetch() {
    local name=$1 version=$2 integrity=$3 inside=$4 dest=$5
    local tarball="https://registry.npmjs.org/$name/-/$name-$version.tgz"
    local work
    work=$(mktemp -d)
    curl -fsSL --retry 3 -o "$work/package.tgz" "$tarball"
    local got
    got="sha512-$(openssl dgst -sha512 -binary "$work/package.tgz" | base64 -w0)"
    if [ "$got" != "$integrity" ]; then
        echo "vendor: $name $version does not match its pinned integrity; refusing it" >&2
        rm -rf "$work"
        return 1
    fi
    tar -xzf "$work/package.tgz" -C "$work" "package/$inside"
    mkdir -p "$(dirname "$dest")"
    cp "$work/package/$inside" "$dest"
    rm -rf "$work"
    echo "vendor: $name $version -> $dest"
}

# Pinned to 2.x: htmx 4 changed much of what the console relies on.
htmx() {
    fetch htmx.org 2.0.11 \
        'sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==' \
        dist/htmx.min.js templates/console/vendor/htmx.min.js
}

sse() {
    fetch htmx-ext-sse 2.2.4 \
        'sha512-LJmxVhykyflBWgh5PvbRidcyuqMHlgfajmmzumvKctv9puvsufeH6OaejSMZTNTnEI8O2wXXn4ZZtBdpEMqmEQ==' \
        dist/sse.min.js templates/console/vendor/sse.js
}

axe() {
    fetch axe-core 4.14.1 \
        'sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==' \
        axe.min.js target/vendor/axe.min.js
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(htmx sse axe)
for target in "${targets[@]}"; do
    "$target"
done
