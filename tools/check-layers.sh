#!/usr/bin/env bash
# Checks every quoted #include of the engine and its hosts against the layer
# order below, so an upward include fails the build's tests instead of
# creeping in unnoticed.
#
#   tools/check-layers.sh [--root DIR]   check the tree at DIR (default: .)
#   tools/check-layers.sh --self-test    prove on a scratch tree that the
#                                        check passes clean code and fails
#                                        bad includes
#
# Prints each violation as FILE:LINE: FOLDER may not include TARGET and
# exits 1 when there is any. <...> includes are never checked.
set -u

# Engine folders, bottom to top. A folder may include its own files and
# those of folders on lower lines; folders sharing a line are independent
# and may not include each other.
LAYERS=(
    "include"
    "runtime"
    "io"
    "config"
    "nn"
    "text vae sampling moe"
    "unet"
    "models"
    "lora"
    "pipeline"
    "merge"
    "abi"
)
# Hosts see the engine only through the public header; besides it they may
# include their own headers (same folder or below) and the host-side
# helper library, which itself includes only the public header and its own
# files. tools/, tests/ and bench/ sit above everything: unchecked.
HOSTS=(cli plugins server)
PUBLIC_HEADER="include/moediffuse.h"
HOST_LIBRARY="host"

declare -A RANK
for i in "${!LAYERS[@]}"; do
    for folder in ${LAYERS[$i]}; do
        RANK[$folder]=$i
    done
done

# Collapses "." and ".." in a relative path; prints nothing when the path
# climbs out of the root.
normalize() {
    local IFS=/ part out=()
    for part in $1; do
        case $part in
        "" | .) ;;
        ..)
            ((${#out[@]})) || return 0
            unset 'out[${#out[@]}-1]'
            ;;
        *) out+=("$part") ;;
        esac
    done
    printf '%s\n' "${out[*]}"
}

# The repository path an include names: next to the including file, else
# from the root, else in include/ (the public header's folder is on the
# include path). Prints nothing for a file that is not in the tree.
resolve() {
    local root=$1 dir=$2 name=$3 path
    for path in "$dir/$name" "$name" "include/$name"; do
        path=$(normalize "$path")
        if [[ -n $path && -f $root/$path ]]; then
            printf '%s\n' "$path"
            return
        fi
    done
}

# FILE LINE NAME for each quoted include of the given files.
quoted_includes() {
    awk 'match($0, /^[ \t]*#[ \t]*include[ \t]*"[^"]+"/) {
             s = substr($0, RSTART, RLENGTH)
             sub(/^[^"]*"/, "", s)
             sub(/"$/, "", s)
             print FILENAME, FNR, s
         }' "$@"
}

engine_allows() {
    local from=$1 to=$2
    [[ $from == "$to" ]] && return 0
    [[ -n ${RANK[$to]:-} ]] && ((RANK[$to] < RANK[$from]))
}

host_allows() {
    local folder=$1 dir=$2 target=$3
    [[ $target == "$PUBLIC_HEADER" || $target == "$dir"/* ]] && return 0
    [[ $folder != "$HOST_LIBRARY" && $target == "$HOST_LIBRARY"/* ]]
}

check_tree() {
    local root=$1 violations=0 folder file line name dir target files
    shopt -s globstar nullglob
    for folder in ${LAYERS[*]} "$HOST_LIBRARY" "${HOSTS[@]}"; do
        files=("$root/$folder"/**/*.[ch])
        ((${#files[@]})) || continue
        while read -r file line name; do
            file=${file#"$root"/}
            dir=${file%/*}
            target=$(resolve "$root" "$dir" "$name")
            [[ -n $target ]] || continue # generated or outside the tree
            if [[ -n ${RANK[$folder]:-} ]]; then
                engine_allows "$folder" "${target%%/*}" && continue
            else
                host_allows "$folder" "$dir" "$target" && continue
            fi
            echo "$file:$line: $folder may not include $target"
            violations=$((violations + 1))
        done < <(quoted_includes "${files[@]}")
    done
    if ((violations)); then
        echo "check-layers: $violations include(s) break the layer order (see the table in $0)" >&2
        return 1
    fi
    return 0
}

# Writes FILE with one include per remaining argument.
write_file() {
    local file=$1 name
    shift
    mkdir -p "${file%/*}"
    : >"$file"
    for name in "$@"; do
        echo "#include \"$name\"" >>"$file"
    done
}

self_test() {
    local out
    tmp=$(mktemp -d) || return 1
    trap 'rm -rf "$tmp"' EXIT
    write_file "$tmp/include/moediffuse.h"
    write_file "$tmp/runtime/status.h"
    write_file "$tmp/moe/moe.h" ../runtime/status.h
    write_file "$tmp/unet/unet.h" ../moe/moe.h runtime/status.h
    write_file "$tmp/host/image.h" moediffuse.h
    write_file "$tmp/cli/cli.h" moediffuse.h
    write_file "$tmp/cli/main.c" cli.h ../host/image.h "stdio_like_generated.h"
    write_file "$tmp/server/server.h" moediffuse.h
    write_file "$tmp/server/http.c" server.h ../host/image.h
    if ! out=$(check_tree "$tmp" 2>&1); then
        echo "check-layers self-test: a clean tree failed:" >&2
        echo "$out" >&2
        return 1
    fi
    write_file "$tmp/moe/upward.c" ../unet/unet.h
    write_file "$tmp/vae/sideways.c" ../moe/moe.h
    write_file "$tmp/cli/engine.c" runtime/status.h
    write_file "$tmp/host/engine_use.c" ../runtime/status.h
    write_file "$tmp/server/engine.c" ../pipeline/pipeline.h
    write_file "$tmp/server/cli_use.c" ../cli/cli.h
    write_file "$tmp/pipeline/pipeline.h"
    if out=$(check_tree "$tmp" 2>&1); then
        echo "check-layers self-test: bad includes passed" >&2
        return 1
    fi
    local want
    for want in "moe/upward.c:1: moe may not include unet/unet.h" \
        "vae/sideways.c:1: vae may not include moe/moe.h" \
        "cli/engine.c:1: cli may not include runtime/status.h" \
        "host/engine_use.c:1: host may not include runtime/status.h" \
        "server/engine.c:1: server may not include pipeline/pipeline.h" \
        "server/cli_use.c:1: server may not include cli/cli.h"; do
        if ! grep -qxF "$want" <<<"$out"; then
            echo "check-layers self-test: missing \"$want\" in:" >&2
            echo "$out" >&2
            return 1
        fi
    done
    echo "check-layers self-test: ok"
}

root=.
case ${1:-} in
--self-test)
    self_test
    exit
    ;;
--root)
    root=${2:?--root needs a folder}
    ;;
"") ;;
*)
    echo "usage: $0 [--root DIR | --self-test]" >&2
    exit 2
    ;;
esac
check_tree "$root"
