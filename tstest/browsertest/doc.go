// Package browsertest holds end-to-end tests of the browser client in real
// headless Chromium, driven with chromedp: real darkchatd nodes serve the
// page, and a real darkchat CLI process on another node talks to the
// browser user, in channels and by direct message, over plain and TLS
// WebSockets.
//
// The tests need Debian's chromium package. Without it they skip, unless
// DARKCHAT_REQUIRE_ALL=1 (as CI sets), when they fail.
package browsertest
