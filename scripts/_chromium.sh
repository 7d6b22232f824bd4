# Sourced by scripts/test: the web view's browser tests need a Chromium (Playwright drives the
# system's; it downloads none). Where none is found and Debian's apt-get can be used (root),
# install Debian's `chromium` once; if that fails, the browser tests skip with their reason.
# DEBUG_SINK_TEST_CHROMIUM=/path/to/chrome uses that one; DEBUG_SINK_TEST_NO_INSTALL=1 never
# installs anything.
if [ -z "${DEBUG_SINK_TEST_CHROMIUM:-}" ] && [ -z "${DEBUG_SINK_TEST_NO_INSTALL:-}" ] \
  && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null \
  && ! command -v google-chrome >/dev/null \
  && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "==> installing Debian's chromium for the browser tests (DEBUG_SINK_TEST_NO_INSTALL=1 skips)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
      || echo "==> could not install chromium: the browser tests will skip" >&2
  fi
fi
