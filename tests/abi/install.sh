#!/usr/bin/env bash
# The library as a product: only the entry point exported, the soname with
# the ABI major, no undefined symbols left to the host; and `cmake --install`
# plus pkg-config are enough for a host to build and run.
set -u
BUILD=${1:?build dir}
SRC=${MD_SOURCE_DIR:?}
LIB="$BUILD/libmoediffuse.so"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0
exported=$(nm -D --defined-only "$LIB" | awk '{print $3}')
echo "exported: $exported"
[ "$exported" = "moediffuse_get_api" ] || { echo "FAIL: exports more than the entry point"; fail=1; }
major=$(sed -n 's/^#define MOEDIFFUSE_ABI_MAJOR \([0-9]*\)/\1/p' "$SRC/include/moediffuse.h")
soname=$(readelf -d "$LIB" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
echo "soname: $soname"
[ "$soname" = "libmoediffuse.so.$major" ] || { echo "FAIL: soname"; fail=1; }
# Every symbol the library needs must come from a library it names.
if ! ldd -r "$LIB" 2>&1 | grep -q "undefined symbol"; then echo "no undefined symbols"
else echo "FAIL: undefined symbols"; ldd -r "$LIB" | grep undefined | head; fail=1; fi

cmake --install "$BUILD" --prefix "$TMP/prefix" >"$TMP/install.log" 2>&1 || { cat "$TMP/install.log"; exit 1; }
PC=$(dirname "$(find "$TMP/prefix" -name moediffuse.pc | head -1)")
[ -f "$TMP/prefix/include/moediffuse.h" ] && [ -n "$PC" ] || { echo "FAIL: header or .pc not installed"; exit 1; }
export PKG_CONFIG_PATH="$PC"
libdir=$(pkg-config --variable=libdir moediffuse)
echo "pkg-config: $(pkg-config --modversion moediffuse), $(pkg-config --cflags --libs moediffuse)"
cc -std=c11 -Wall -Werror -o "$TMP/host" "$SRC/tests/abi/compat_host.c" \
  $(pkg-config --cflags --libs moediffuse) -Wl,-rpath,"$libdir" || { echo "FAIL: building against the install"; exit 1; }
"$TMP/host" "${MD_GOLDEN_DIR:?}/tiny-sd-dense" || { echo "FAIL: the installed library does not run"; fail=1; }
plugin="$TMP/prefix/lib/gimp/2.0/plug-ins/moediffuse/moediffuse"
if [ -x "$plugin" ]; then
  if ldd "$plugin" | grep -q "libmoediffuse.so.$major => $TMP/prefix"; then echo "GIMP plug-in finds the installed library"
  else echo "FAIL: the installed GIMP plug-in does not find the library"; ldd "$plugin" | grep moediffuse; fail=1; fi
fi
[ $fail = 0 ] && echo "install: ok"
exit $fail
