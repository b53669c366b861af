#!/usr/bin/env bash
# Installs what the chat's browser end-to-end test (cmd/relais
# TestChatBrowserEndToEnd) drives: Debian's chromium and nodejs/npm when
# missing, then playwright-core from the npm lock file (npm ci, no browser
# download: the test uses /usr/bin/chromium). The test skips cleanly when
# any of it cannot be installed.
set -u
cd "$(dirname "$0")/.." || exit 0
e2e=cmd/relais/testdata/chat-e2e
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "browser-deps: missing ${need[*]}; install them to run the browser test (it skips otherwise)" >&2
  else
    echo "browser-deps: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" fonts-dejavu-core; } >/tmp/relais-browser-deps.log 2>&1 ||
      echo "browser-deps: could not install ${need[*]} (see /tmp/relais-browser-deps.log); the browser test will skip" >&2
  fi
fi
if command -v npm >/dev/null 2>&1 && [ ! -f "$e2e/node_modules/playwright-core/package.json" ]; then
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing
  # anyway; belt and braces.
  (cd "$e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) >/tmp/relais-npm-ci.log 2>&1 ||
    echo "browser-deps: npm ci failed in $e2e (see /tmp/relais-npm-ci.log); the browser test will skip" >&2
fi
exit 0
