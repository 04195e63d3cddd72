#!/usr/bin/env bash
# Installs prefork from BUILD_DIR into a temporary prefix, builds an application against
# it with find_package(prefork), and checks that both the binaries and the application run.
set -euo pipefail
build_dir="$1"
source_dir="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d /tmp/prefork-package-XXXXXX)"
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
for file in bin/prefork bin/prefork-demo bin/preforkctl include/prefork/worker.hpp lib/cmake/prefork/prefork-config.cmake; do
  [ -e "$work/prefix/$file" ] || { echo "not installed: $file"; exit 1; }
done
"$work/prefix/bin/prefork" --version | grep -q '^prefork '

cmake -S "$source_dir" -B "$work/app" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/app" >/dev/null
"$work/app/hello" --help | grep -q 'usage: hello'
echo "installed package builds and runs an application"
