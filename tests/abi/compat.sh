#!/usr/bin/env bash
# A host built against the frozen ABI 1.0 header and the same host built
# against today's header both run against today's library and produce the
# same image.
set -u
BUILD=${1:?build dir}
MODEL="${MD_GOLDEN_DIR:?}/tiny-sd-dense"
old=$("$BUILD/abi-compat-v1_0" "$MODEL") || { echo "FAIL: the 1.0 host failed"; exit 1; }
new=$("$BUILD/abi-compat-current" "$MODEL") || { echo "FAIL: the current host failed"; exit 1; }
echo "1.0 host:     $old"
echo "current host: $new"
case "$old" in "header 1.0, params 80 bytes,"*) ;; *) echo "FAIL: not built against 1.0"; exit 1;; esac
case "$new" in "header 1.0,"*) echo "FAIL: the current header is still 1.0"; exit 1;; esac
if [ "${old##*hash }" != "${new##*hash }" ]; then echo "FAIL: the images differ"; exit 1; fi
echo "compat: ok"
