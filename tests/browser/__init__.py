"""Dashboard tests in a real Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""
