#!/bin/sh
# Test shim for `scp`: copies SRC... to the path of the last `host:path` argument on this
# machine (no network). Options (-o X, -q, -p) are dropped.
n=0
for a in "$@"; do n=$((n + 1)); done
i=0
skip=0
for a in "$@"; do
  i=$((i + 1))
  if [ "$skip" = 1 ]; then skip=0; continue; fi
  case "$a" in
    -o) skip=1 ;;
    -*) ;;
    *)
      if [ "$i" = "$n" ]; then
        dest="${a#*:}"
      else
        set -- "$@" "$a"
      fi
      ;;
  esac
done
# "$@" now ends with the sources appended after the original arguments.
shift "$n"
exec cp -p "$@" "$dest"
