#!/usr/bin/env bash
# Install the real browser the end-to-end web test drives (tests/e2e/test_browser.py):
# Debian's chromium at /usr/bin/chromium, plus a font so screenshots show text. Playwright
# drives it through `executable_path`; `playwright install` is never run (it downloads a
# browser build of its own, which cannot be fetched here). For a bare Debian 12 CI machine,
# running as root. Idempotent: does nothing when the browser is already there.
#
#   bash .ci/browser.sh        # then: EASEL_REQUIRE_BROWSER=1 make test
set -euo pipefail

log() { echo "browser.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

BROWSER=/usr/bin/chromium

if [[ ! -x "$BROWSER" ]] || ! compgen -G '/usr/share/fonts/truetype/dejavu/DejaVuSans*.ttf' >/dev/null; then
  log "installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 || die "apt-get update failed"
  apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >&2 \
    || die "apt-get install chromium failed"
fi
[[ -x "$BROWSER" ]] || die "$BROWSER is missing after the install"
# The version, and proof that it starts headless at all (a missing library shows here).
"$BROWSER" --headless --no-sandbox --disable-gpu --version 2>/dev/null | head -n 1 >&2 \
  || die "$BROWSER does not start"
log "ready: $BROWSER"
