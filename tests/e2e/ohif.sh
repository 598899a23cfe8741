#!/usr/bin/env bash
# ct-triage's results in the released OHIF viewer (issue 13, "Shown in OHIF").
# Gets OHIF 3.13.2 (npm @ohif/app, its prebuilt dist/, pinned by version and
# npm integrity) into tests/e2e/.cache/ohif-3.13.2/ once, then runs ohif.mjs:
# Orthanc + DICOMweb on loopback holding lung1 and ct-triage's SR, SEG, key
# images and KOS; OHIF served by nginx with /dicom-web on the same origin;
# headless Chromium checks the SR's measurements and the SEG's segments.
#
#   tests/e2e/ohif.sh            # CTT_BIN=… for another CLI binary
#   OHIF_TGZ=/path/ohif-app-3.13.2.tgz tests/e2e/ohif.sh   # a local copy of the npm tarball (checked)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VERSION=3.13.2
# `npm view @ohif/app@3.13.2 dist.integrity`
INTEGRITY='sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=='
CACHE="$HERE/.cache/ohif-$VERSION"
say() { printf '\033[1m[ohif.sh]\033[0m %s\n' "$*" >&2; }

if [ ! -f "$CACHE/dist/index.html" ] || [ "$(cat "$CACHE/.integrity" 2>/dev/null)" != "$INTEGRITY" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  if [ -n "${OHIF_TGZ:-}" ]; then
    say "OHIF $VERSION from $OHIF_TGZ"
    cp "$OHIF_TGZ" "$tmp/ohif.tgz"
  else
    command -v npm >/dev/null || { echo "FAIL npm is not installed (needed to get @ohif/app@$VERSION)" >&2; exit 1; }
    say "npm pack @ohif/app@$VERSION (≈ 50 MB)"
    (cd "$tmp" && npm pack --silent "@ohif/app@$VERSION" >/dev/null)
    mv "$tmp"/ohif-app-"$VERSION".tgz "$tmp/ohif.tgz"
  fi
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/ohif.tgz" | base64 -w0)"
  if [ "$got" != "$INTEGRITY" ]; then
    echo "FAIL @ohif/app@$VERSION tarball integrity $got, expected $INTEGRITY" >&2; exit 1
  fi
  tar -xzf "$tmp/ohif.tgz" -C "$tmp" package/dist package/package.json
  grep -q "\"version\": \"$VERSION\"" "$tmp/package/package.json" || { echo "FAIL the tarball is not @ohif/app $VERSION" >&2; exit 1; }
  rm -rf "$CACHE"
  mkdir -p "$CACHE"
  mv "$tmp/package/dist" "$CACHE/dist"
  chmod -R a+rX "$CACHE/dist"
  echo "$INTEGRITY" > "$CACHE/.integrity"
  rm -rf "$tmp"; trap - EXIT
  say "OHIF $VERSION in $CACHE/dist"
fi
exec node "$HERE/ohif.mjs" --ohif "$CACHE/dist" "$@"
