#!/usr/bin/env bash
# Builds the 32-bit MicroPython unix port with the ESP32's heap shape (variant/, one small
# patch) and the virtual board frozen in (manifest.py) from upstream v1.28.0 source into
# OUT/micropython. The source comes from, in order:
# $MPY32_SOURCE, the vendored subset ../shared/vendor/micropython-1.28.0-unix-esp32-src.tar.xz
# beside the checkout, or the release tarball from micropython.org when there is internet.
# Usage: mpy32/build.sh OUT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
release=micropython-1.28.0
url=https://micropython.org/resources/source/$release.tar.xz

fail() {
  echo "mpy32: $*" >&2
  exit 1
}

# gcc -m32 needs Debian's gcc-multilib; installed like mosquitto when missing
if ! echo 'int main(void){return 0;}' | gcc -m32 -x c - -o /dev/null 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-multilib >/dev/null
  else
    fail "gcc cannot build 32-bit programs: run  sudo apt-get install gcc-multilib"
  fi
fi

src=${MPY32_SOURCE:-}
if [ -z "$src" ]; then
  for candidate in "$here/../../shared/vendor/$release-unix-esp32-src.tar.xz" \
                   "$here/../shared/vendor/$release-unix-esp32-src.tar.xz"; do
    [ -f "$candidate" ] && src=$candidate && break
  done
fi
if [ -z "$src" ]; then
  src=$out/$release.tar.xz
  if [ ! -f "$src" ]; then
    echo "mpy32: no vendored source; fetching $url"
    curl -fsSL --retry 2 -o "$src.part" "$url" || fail "cannot fetch $url (no vendored source, no internet)"
    mv "$src.part" "$src"
  fi
fi

rm -rf "$out/src" "$out/obj" && mkdir -p "$out/src"
tar -xJf "$src" -C "$out/src" --strip-components=1
patch -s -d "$out/src" -p1 < "$here/first-heap-area.patch"
# freezing (manifest.py) looks for the micropython-lib submodule, which nothing here uses
mkdir -p "$out/src/lib/micropython-lib" && echo "not vendored" > "$out/src/lib/micropython-lib/README.md"
make -s -C "$out/src/mpy-cross" -j"$(nproc)" >"$out/build.log" 2>&1 \
  || { tail -30 "$out/build.log" >&2; fail "mpy-cross (for freezing) failed (log: $out/build.log)"; }
make -s -C "$out/src/ports/unix" -j"$(nproc)" VARIANT_DIR="$here/variant" BUILD="$out/obj" \
  >>"$out/build.log" 2>&1 || { tail -30 "$out/build.log" >&2; fail "build failed (log: $out/build.log)"; }
cp "$out/obj/micropython" "$out/micropython.new"  # renamed over: a running one keeps its file
mv "$out/micropython.new" "$out/micropython"
"$out/micropython" -c "import sys; assert sys.maxsize == 2**31 - 1, 'not a 32-bit build'" \
  || fail "the result is not a working 32-bit MicroPython"
# which stand-ins went in, to tell a stale build (host_tools/paths.py compares)
(cd "$here/../host_tools/virtual/board" && sha256sum $(sed 's/$/.py/' "$here/frozen.txt")) \
  > "$out/frozen.sha256"
rm -rf "$out/src" "$out/obj"
echo "mpy32: built $out/micropython (32-bit, ESP32 heap shape) from $(basename "$src")"
