#!/bin/sh
# Test shim for `ssh`: no network at all. Drops ssh's options (-o X, -R X, ...) and the
# destination, then runs the remote command with sh on this machine, so the harness's real
# ssh command lines (home preparation, station start, --kill) are executed verbatim.
while [ $# -gt 0 ]; do
  case "$1" in
    -o|-R|-L|-i|-p|-F) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
shift
exec sh -c "$*"
